"use strict";
// Chat with an agent: the conversations API (POST /conversations, /conversations/{id}/messages) streamed as
// server-sent events over fetch, so "Stop" is aborting the fetch. The turn itself runs to its end on the server
// and is stored there (docs/http-api.md, "Streaming a turn"), so nothing the agent did is lost by stopping.
const AGENT_KEY = "cristal.agent";
const chat = { conversationId: null, title: "", lastQuestion: null, controller: null, listSeq: 0 };

// The open conversation is in the address (#conversation=ID), so it can be bookmarked, reloaded and shared
// with oneself; anyone else's id there is the API's 404, shown as its message.
function conversationInAddress() {
  const m = /^#conversation=([\w-]{1,100})$/.exec(location.hash);
  return m ? m[1] : null;
}

function setAddress(id) {
  history.replaceState(null, "", id ? "#conversation=" + encodeURIComponent(id) : location.pathname + location.search);
}

function resetChat() {
  if (chat.controller) chat.controller.abort();
  if (conversationInAddress()) setAddress(null);
  Object.assign(chat, { conversationId: null, title: "", lastQuestion: null, controller: null });
  $("messages").replaceChildren();
  $("citation").hidden = true;
  $("chat-error").textContent = "";
  $("agent").disabled = false;
  $("conv-bar").hidden = true;
  endRename(); $("delete-confirm").hidden = true;
  setBusy(false);
}

function setBusy(busy) {
  $("send").hidden = busy; $("stop").hidden = !busy;
  $("regenerate").hidden = busy || !chat.lastQuestion;
}

async function loadChat() {
  await Promise.all([loadAgents(), loadConversations()]);
  const id = conversationInAddress() || chat.conversationId;
  if (id && !chat.controller) openConversation(id);
}

async function loadAgents() {
  if ($("agent").disabled) return;  // an open conversation keeps its agent
  try {
    const doc = await api("/agents");
    const usable = doc.agents.filter((a) => a.published_version !== null);
    const wanted = $("agent").value || localStorage.getItem(AGENT_KEY);
    $("agent").replaceChildren(...usable.map((a) => el("option", { value: a.agent }, a.description ? a.agent + " — " + a.description : a.agent)));
    if (!usable.length) $("agent").append(el("option", { value: "", disabled: true }, t("chat.no_agents")));
    if (usable.some((a) => a.agent === wanted)) $("agent").value = wanted;
  } catch (e) { $("chat-error").textContent = e.message; }
}

async function loadConversations() {
  const seq = ++chat.listSeq;  // a slower answer to an earlier search must not replace a later one
  const q = $("conv-q").value.trim();
  try {
    const doc = await api("/conversations" + (q ? "?q=" + encodeURIComponent(q) : ""));
    if (seq !== chat.listSeq) return;
    const items = doc.conversations.map((c) => {
      const b = el("button", { type: "button" }, el("div", {}, c.title || c.conversation_id),
        el("div", { className: "meta" }, c.agent + " · " + formatDate(c.updated_at)));
      b.setAttribute("aria-current", String(c.conversation_id === chat.conversationId));
      b.addEventListener("click", () => openConversation(c.conversation_id));
      return el("li", {}, b);
    });
    if (!items.length) items.push(el("li", { className: "meta" }, q ? t("chat.no_match") : t("chat.no_conversations")));
    $("conv-list").replaceChildren(...items);
  } catch (e) { $("chat-error").textContent = e.message; }
}

function showConversationBar() {
  $("conv-bar").hidden = !chat.conversationId;
  $("conv-title").textContent = chat.title;
}

async function openConversation(id) {
  if (chat.controller) return;  // a turn is streaming: stop it first
  $("chat-error").textContent = "";
  try {
    const doc = await api("/conversations/" + encodeURIComponent(id));
    resetChat();
    Object.assign(chat, { conversationId: doc.conversation_id, title: doc.title || "" });
    setAddress(doc.conversation_id);
    $("agent").replaceChildren(el("option", { value: doc.agent }, doc.agent));
    $("agent").disabled = true;  // a conversation goes on with the agent (and version) it started with
    for (const m of doc.messages) {
      const content = m.message && typeof m.message.content === "string" ? m.message.content : "";
      if (m.role === "user") {
        chat.lastQuestion = content;
        $("messages").append(el("div", { className: "msg user" }, content));
      } else if (m.role === "assistant" && content && !(m.message.tool_calls && m.message.tool_calls.length)) {
        const view = turnView();
        for (const call of m.tool_calls || []) view.tools.append(toolView(call, call.status));
        setCitations(view, m.citations || []);
        renderAnswer(view, content);
        view.status.textContent = formatDate(m.created_at);
        $("messages").append(view.node);
      }
    }
    showConversationBar();
    setBusy(false);
    loadConversations();
  } catch (e) {
    setAddress(chat.conversationId);  // the conversation still open, if any, stays open and in the address
    $("chat-error").textContent = e.message;
  }
}

function turnView() {
  const view = { tools: el("div", {}), body: el("div", { className: "body" }), status: el("div", { className: "meta" }),
    calls: {}, steps: {}, step: -1, citations: {} };
  view.node = el("div", { className: "msg assistant" }, view.tools, view.body, view.status);
  return view;
}

// One tool call, collapsed to its name and state; open it for the arguments and the outcome's message.
function toolView(call, status) {
  const summary = el("summary", {});
  const details = el("details", { className: "tool" }, summary, el("pre", {}, JSON.stringify(call.arguments ?? {}, null, 2)));
  details.summaryNode = summary;
  setToolStatus(details, call, status);
  return details;
}

function setToolStatus(details, call, status) {
  details.summaryNode.textContent = status ? t("chat.tool_done", { name: call.name, status: t("chat.tool_status." + status) })
    : t("chat.tool_running", { name: call.name });
  if (call.message) details.append(el("div", {}, call.message));
}

function setCitations(view, citations) {
  view.citations = {};
  for (const c of citations) view.citations[c.n] = c;
}

function renderAnswer(view, text) {
  view.body.replaceChildren(renderMarkdown(text, (n) => {
    const c = view.citations[n];
    if (!c) return null;
    const b = el("button", { type: "button", className: "cite" }, "[" + n + "]");
    b.setAttribute("aria-label", t("chat.cite_label", { n, uri: c.uri }));
    b.addEventListener("click", () => openCitation(c));
    return b;
  }));
}

function openCitation(c) {
  citationOpener = document.activeElement;
  $("citation-heading").textContent = t("chat.citation", { n: c.n });
  $("citation-quote").textContent = c.quote;
  const web = /^https?:\/\//i.test(c.uri);
  $("citation-link").hidden = !web; $("citation-uri").hidden = web;
  if (web) { $("citation-link").href = c.uri; $("citation-link").textContent = c.uri; }
  else { $("citation-link").removeAttribute("href"); $("citation-uri").textContent = c.uri; }
  $("citation").hidden = false;
  $("citation-close").focus();
}

// The server-sent events of a streamed response, as [event, data] pairs as they arrive.
async function* serverSentEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      yield [kind, data ? JSON.parse(data) : null];
    }
  }
}

function onTurnEvent(view, kind, data) {
  if (kind === "tool_call.started") {
    view.calls[data.id] = toolView(data, null);
    view.tools.append(view.calls[data.id]);
  } else if (kind === "tool_call.finished") {
    if (view.calls[data.id]) setToolStatus(view.calls[data.id], data, data.status);
    else view.tools.append(toolView(data, data.status));
  } else if (kind === "text") {
    // Text written alongside tool calls comes in earlier steps; what is shown is the latest step's.
    view.steps[data.step] = (view.steps[data.step] || "") + data.text;
    view.step = Math.max(view.step, data.step);
    renderAnswer(view, view.steps[view.step]);
  } else if (kind === "citation") {
    view.citations[data.n] = data;
    if (view.step >= 0) renderAnswer(view, view.steps[view.step]);
  } else if (kind === "done") {
    setCitations(view, data.citations || []);
    renderAnswer(view, data.answer);
    view.status.textContent = t("chat.usage", { tokens: formatNumber(data.tokens || 0) });
    if (!chat.conversationId) {
      chat.conversationId = data.conversation_id; chat.title = chat.lastQuestion.slice(0, 200);
      setAddress(chat.conversationId);
    }
    $("agent").disabled = true;
  } else if (kind === "error") {
    view.status.className = "error";
    view.status.textContent = (data && data.error && data.error.message) || t("chat.failed");
  }
}

async function send(question) {
  if (chat.controller || !question.trim()) return;
  $("chat-error").textContent = "";
  const agent = $("agent").value;
  if (!chat.conversationId && !agent) { $("chat-error").textContent = t("chat.pick_agent"); return; }
  if (!chat.conversationId) localStorage.setItem(AGENT_KEY, agent);
  chat.lastQuestion = question;
  const view = turnView();
  view.node.setAttribute("aria-busy", "true");  // screen readers read the answer once, when it is whole
  $("messages").append(el("div", { className: "msg user" }, question), view.node);
  view.status.textContent = t("chat.thinking");
  const controller = new AbortController();
  chat.controller = controller;
  setBusy(true);
  const path = chat.conversationId ? "/conversations/" + encodeURIComponent(chat.conversationId) + "/messages" : "/conversations";
  const body = chat.conversationId ? { message: question, stream: true } : { agent, message: question, stream: true };
  let ended = false;
  try {
    const response = await request(path, { method: "POST", body, headers: { Accept: "text/event-stream" }, signal: controller.signal });
    for await (const [kind, data] of serverSentEvents(response)) {
      if (kind === "text" && view.status.textContent === t("chat.thinking")) view.status.textContent = "";
      onTurnEvent(view, kind, data);
      if (kind === "done" || kind === "error") ended = true;
    }
    // A stream that ends without done or error was cut: say so rather than show half an answer as whole.
    if (!ended) { view.status.className = "error"; view.status.textContent = t("chat.incomplete"); }
  } catch (e) {
    view.status.className = e.name === "AbortError" ? "meta" : "error";
    view.status.textContent = e.name === "AbortError" ? t("chat.stopped") : e.message;
  } finally {
    view.node.removeAttribute("aria-busy");
    if (chat.controller === controller) chat.controller = null;
    setBusy(false);
    showConversationBar();
    loadConversations();
  }
}

$("chat-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const question = $("chat-input").value;
  if (!question.trim()) return;
  $("chat-input").value = "";
  send(question);
});
// Enter sends, Shift+Enter is a new line — but not while an input method is composing (Japanese: Enter then
// confirms the conversion). keyCode 229 is what some browsers report for that Enter instead of isComposing.
$("chat-input").addEventListener("keydown", (ev) => {
  if (ev.key !== "Enter" || ev.shiftKey || ev.isComposing || ev.keyCode === 229) return;
  ev.preventDefault();
  $("chat-form").requestSubmit();
});
$("stop").addEventListener("click", () => { if (chat.controller) chat.controller.abort(); });
$("regenerate").addEventListener("click", () => { if (chat.lastQuestion) send(chat.lastQuestion); });
$("new-chat").addEventListener("click", () => { resetChat(); loadAgents(); loadConversations(); $("chat-input").focus(); });
window.addEventListener("hashchange", () => {
  const id = conversationInAddress();
  if (!id || id === chat.conversationId || $("tabs").hidden) return;
  if (currentTab === "chat") openConversation(id);
  else show("chat");  // which opens the conversation in the address
});
// Closing the passage (the button or Escape) takes the keyboard back to the marker that opened it.
let citationOpener = null;
function closeCitation() {
  $("citation").hidden = true;
  if (citationOpener && citationOpener.isConnected) citationOpener.focus();
  citationOpener = null;
}
$("citation-close").addEventListener("click", closeCitation);
$("citation").addEventListener("keydown", (ev) => { if (ev.key === "Escape") closeCitation(); });

let searchTimer = null;
$("conv-q").addEventListener("input", (ev) => {
  if (ev.isComposing) return;  // searched once the composition is committed (compositionend)
  clearTimeout(searchTimer);
  searchTimer = setTimeout(loadConversations, 150);
});
$("conv-q").addEventListener("compositionend", () => loadConversations());

function endRename() {
  $("rename-input").hidden = true; $("rename-save").hidden = true; $("rename").hidden = false; $("conv-title").hidden = false;
}

$("rename").addEventListener("click", () => {
  $("rename-input").value = chat.title;
  $("rename-input").hidden = false; $("rename-save").hidden = false; $("rename").hidden = true; $("conv-title").hidden = true;
  $("rename-input").focus();
});
async function saveTitle() {
  const title = $("rename-input").value.trim();
  if (!title || !chat.conversationId) return;
  try {
    const doc = await api("/conversations/" + encodeURIComponent(chat.conversationId), { method: "PATCH", body: { title } });
    chat.title = doc.title;
    endRename(); showConversationBar(); loadConversations();
  } catch (e) { $("chat-error").textContent = e.message; }
}
$("rename-save").addEventListener("click", saveTitle);
$("rename-input").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.isComposing && ev.keyCode !== 229) { ev.preventDefault(); saveTitle(); }
  if (ev.key === "Escape") endRename();
});

$("delete").addEventListener("click", () => { $("delete-confirm").hidden = false; $("delete-confirm").focus(); });
$("delete-confirm").addEventListener("click", async () => {
  try {
    await api("/conversations/" + encodeURIComponent(chat.conversationId), { method: "DELETE" });
    resetChat(); loadChat();
  } catch (e) { $("chat-error").textContent = e.message; }
});

function download(name, type, text) {
  const a = el("a", { href: URL.createObjectURL(new Blob([text], { type })), download: name });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}
$("export-md").addEventListener("click", async () => {
  try {
    const response = await request("/conversations/" + encodeURIComponent(chat.conversationId) + "/export?format=markdown");
    download("conversation-" + chat.conversationId + ".md", "text/markdown", await response.text());
  } catch (e) { $("chat-error").textContent = e.message; }
});
$("export-json").addEventListener("click", async () => {
  try {
    const doc = await api("/conversations/" + encodeURIComponent(chat.conversationId) + "/export");
    download("conversation-" + chat.conversationId + ".json", "application/json", JSON.stringify(doc, null, 2));
  } catch (e) { $("chat-error").textContent = e.message; }
});

if (sessionStorage.getItem(KEY)) signIn(sessionStorage.getItem(KEY));
else resumeSession();
