"use strict";
// Everything from the server is inserted with textContent, never as HTML: documents are untrusted content.
const KEY = "cristal.apiKey";
const ORG = "cristal.org";
const $ = (id) => document.getElementById(id);
// Signed in with the company account: the session lives in an HttpOnly cookie the page cannot read; what the page
// holds is the session's CSRF token (from /api/v1/me), sent with every request that changes something.
let csrfToken = null;

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

// A request to the API as the signed-in person: the pasted key as a Bearer token, or the session cookie plus
// its CSRF token on anything that changes something. A failed response throws its one-line error message.
async function request(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = Object.assign({}, opts.headers || {});
  const key = sessionStorage.getItem(KEY);
  if (key) opts.headers["Authorization"] = "Bearer " + key;
  else if (csrfToken && opts.method && opts.method !== "GET") opts.headers["X-CSRF-Token"] = csrfToken;
  if (opts.body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(opts.body); }
  const response = await fetch("/api/v1" + path, opts);
  if (!response.ok) {
    let doc = null;
    try { doc = await response.json(); } catch (e) { doc = null; }
    const message = (doc && doc.error && doc.error.message) || ("HTTP " + response.status);
    // An expired session or a revoked key: back to sign-in, saying why (what was typed in chat stays in the box).
    if (response.status === 401) { signOut(); $("signin-error").textContent = message; }
    throw new Error(message);
  }
  return response;
}

async function api(path, options) {
  const response = await request(path, options);
  try { return await response.json(); } catch (e) { return null; }
}

const TABS = ["chat", "search", "approvals", "runs"];
let currentTab = "chat";

function show(tab) {
  for (const b of document.querySelectorAll("#tabs button")) b.setAttribute("aria-selected", String(b.dataset.tab === tab));
  for (const id of TABS) $(id).hidden = id !== tab;
  currentTab = tab;
  if (tab === "chat") loadChat();
  if (tab === "approvals") loadApprovals();
  if (tab === "runs") loadRuns();
}

function signedIn(me) {
  $("who").textContent = me.email + " · " + me.org + (me.is_admin ? " · " + t("who.admin") : "");
  $("signin").hidden = true; $("tabs").hidden = false; $("signout").hidden = false;
  show("chat");
}

async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  try {
    signedIn(await api("/me"));
  } catch (e) {
    sessionStorage.removeItem(KEY);
    $("signin-error").textContent = e.message;
  }
}

// A session cookie from the company sign-in, if there is one: /api/v1/me answers with its CSRF token.
async function resumeSession() {
  const response = await fetch("/api/v1/me");
  if (!response.ok) return;
  const me = await response.json();
  csrfToken = me.csrf_token || null;
  if (csrfToken) signedIn(me);
}

async function signOut() {
  if (csrfToken && !sessionStorage.getItem(KEY)) {
    try { await fetch("/auth/logout", { method: "POST", headers: { "X-CSRF-Token": csrfToken } }); } catch (e) { /* shown signed out anyway */ }
  }
  csrfToken = null;
  sessionStorage.removeItem(KEY);
  $("who").textContent = ""; $("tabs").hidden = true; $("signout").hidden = true; $("signin").hidden = false;
  for (const id of TABS) $(id).hidden = true;
  resetChat();
}

$("signin-form").addEventListener("submit", (ev) => { ev.preventDefault(); $("signin-error").textContent = ""; signIn($("key").value.trim()); $("key").value = ""; });
$("signout").addEventListener("click", signOut);
$("company-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const org = $("org").value.trim();
  if (!org) { $("signin-error").textContent = t("signin.org_missing"); return; }
  localStorage.setItem(ORG, org);
  location.assign("/auth/login?org=" + encodeURIComponent(org));
});
$("org").value = localStorage.getItem(ORG) || "";
for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => show(b.dataset.tab));

$("search-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("search-error").textContent = ""; $("hits").replaceChildren();
  try {
    const doc = await api("/search", { method: "POST", body: { query: $("query").value, limit: 10 } });
    if (!doc.hits.length) $("hits").append(el("p", { className: "meta" }, t("search.none")));
    for (const h of doc.hits) {
      $("hits").append(el("div", { className: "hit" },
        el("strong", {}, h.title || h.uri), el("div", { className: "meta" }, h.uri + " · " + h.lang + " · " + t("search.score", { score: formatNumber(h.score, 3) })),
        el("div", {}, h.snippet)));
    }
  } catch (e) { $("search-error").textContent = e.message; }
});

async function loadApprovals() {
  $("approvals-error").textContent = ""; $("approval-list").replaceChildren();
  try {
    const doc = await api("/approvals");
    if (!doc.approvals.length) $("approval-list").append(el("p", { className: "meta" }, t("approvals.none")));
    for (const a of doc.approvals) {
      const comment = el("input", { type: "text", placeholder: t("approvals.comment") });
      comment.setAttribute("aria-label", t("approvals.comment_for", { id: a.id }));
      const buttons = el("div", { className: "row" });
      if (a.can_decide) {
        for (const [label, verb] of [[t("approvals.approve"), "approve"], [t("approvals.reject"), "reject"]]) {
          const b = el("button", { className: "act" + (verb === "reject" ? " reject" : "") }, label);
          b.addEventListener("click", async () => {
            try { await api("/approvals/" + encodeURIComponent(a.id) + "/" + verb, { method: "POST", body: { comment: comment.value || null } }); loadApprovals(); }
            catch (e) { $("approvals-error").textContent = e.message; }
          });
          buttons.append(b);
        }
      }
      $("approval-list").append(el("div", { className: "item" },
        el("strong", {}, a.workflow + " / " + a.step_id), el("div", { className: "meta" }, a.id + " · " + t("approvals.requested_by", { owner: a.owner, approvers: a.approvers.join(", ") })),
        el("p", {}, a.message),
        // An agent's call: the approver decides on exactly what runs (text nodes: nothing in it is markup).
        a.subject === "conversation" && a.details ? el("pre", { className: "meta" }, a.details.tool + " " + JSON.stringify(a.details.arguments, null, 2)) : "",
        a.can_decide ? comment : el("span", { className: "meta" }, t("approvals.not_approver")), buttons));
    }
  } catch (e) { $("approvals-error").textContent = e.message; }
}

async function loadRuns() {
  $("runs-error").textContent = ""; $("run-rows").replaceChildren(); $("run-detail").replaceChildren();
  try {
    const doc = await api("/runs?limit=100");
    for (const r of doc.runs) {
      const link = el("a", { href: "#" }, r.run_id);
      link.addEventListener("click", (ev) => { ev.preventDefault(); loadRun(r.run_id); });
      $("run-rows").append(el("tr", {}, el("td", {}, link), el("td", {}, r.workflow), el("td", {}, r.owner),
        el("td", { className: "status-" + r.status }, r.status), el("td", {}, formatDate(r.created_at))));
    }
  } catch (e) { $("runs-error").textContent = e.message; }
}

async function loadRun(id) {
  try {
    const doc = await api("/runs/" + encodeURIComponent(id));
    const rows = doc.steps.map((s) => el("tr", {}, el("td", {}, s.id), el("td", {}, s.kind), el("td", { className: "status-" + s.status }, s.status),
      el("td", {}, s.error || (s.approval ? t("runs.approval", { id: s.approval.id, status: s.approval.status }) : ""))));
    $("run-detail").replaceChildren(el("h3", {}, doc.run_id + " — " + doc.status),
      el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, t("runs.step")), el("th", {}, t("runs.kind")), el("th", {}, t("runs.state")), el("th", {}, t("runs.detail")))), el("tbody", {}, ...rows)),
      el("pre", {}, JSON.stringify(doc.result ?? null, null, 2)));
  } catch (e) { $("runs-error").textContent = e.message; }
}

// A new language: re-render what the open tab shows from the server (its static strings are done by applyI18n).
localeListeners.push(() => { if (!$("tabs").hidden && currentTab !== "search") show(currentTab); });
