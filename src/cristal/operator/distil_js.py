"""The JavaScript that distils a page in one ``page.evaluate`` pass.

It walks the composed tree (open shadow roots through their slots, same-origin
iframes), keeps what is rendered, and returns

- ``elements``: every interactive element with its role, accessible name,
  value and state, a fingerprint and the ID it was given;
- ``text``: the visible text in document (reading) order, one block per line,
  with interactive elements shown in place as ``[ID]``;
- ``assigned``: fingerprints seen for the first time, with their new IDs.

IDs are stable within a run: the caller passes the ``known`` fingerprint → ID
map and the next free ID, and the same fingerprint always gets the same ID.
Each element gets a ``data-cristal-id`` attribute (iframes a
``data-cristal-frame``) so actions can find it again with a CSS locator, which
Playwright lets pierce open shadow roots.

Kept in a Python module (not a .js file) so it ships inside the wheel with no
packaging rule.
"""

DISTIL_JS = r"""
(argsJson) => {
  // Arguments and result travel as JSON strings: much faster than Playwright's structured serialisation.
  const args = JSON.parse(argsJson);
  const t0 = performance.now();
  const known = args.known || {};
  let next = args.next || 1;
  const MAX_ELEMENTS = args.maxElements || 400;
  const MAX_TEXT = args.maxText || 8000;
  const assigned = {};
  const elements = [];
  const seenKeys = {};
  const lines = [];
  let line = [];
  let textLen = 0;
  let truncatedElements = 0;
  let frameSeq = 0;
  const path = [];

  // Clear the marks of the previous observation (kept as weak references on the top window).
  const prev = window.__cristalMarked || [];
  for (const ref of prev) {
    const el = ref.deref();
    if (el) { el.removeAttribute('data-cristal-id'); }
  }
  const marked = [];

  // A short, stable digest of a fingerprint (two 32-bit FNV-1a variants): keeps the ID map small on the wire.
  function hash(str) {
    let h1 = 0x811c9dc5, h2 = 0x01000193 ^ str.length;
    for (let i = 0; i < str.length; i++) {
      const c = str.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 16777619);
      h2 = Math.imul(h2 ^ c, 2246822519);
    }
    return (h1 >>> 0).toString(36) + (h2 >>> 0).toString(36);
  }
  const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
  const cut = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s);

  const SKIP = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'HEAD', 'META', 'LINK', 'TITLE']);
  const BLOCK = new Set(['block', 'flex', 'grid', 'list-item', 'table', 'table-row', 'table-caption',
                         'flow-root', 'table-row-group', 'table-header-group', 'table-footer-group']);
  const WIDGET_ROLES = new Set(['button', 'link', 'checkbox', 'radio', 'textbox', 'searchbox', 'combobox',
    'listbox', 'slider', 'spinbutton', 'switch', 'tab', 'menuitem', 'menuitemcheckbox', 'menuitemradio',
    'option', 'treeitem']);
  const CONTEXT_TAGS = new Set(['TR', 'LI']);
  const CONTEXT_ROLES = new Set(['row', 'listitem', 'article']);
  const TEXT_TYPES = new Set(['', 'text', 'email', 'tel', 'url', 'password', 'date', 'datetime-local',
                              'month', 'week', 'time', 'color']);

  function implicitRole(el, tag) {
    switch (tag) {
      case 'A': case 'AREA': return el.hasAttribute('href') ? 'link' : null;
      case 'BUTTON': return 'button';
      case 'SUMMARY': return 'button';
      case 'SELECT': return (el.multiple || el.size > 1) ? 'listbox' : 'combobox';
      case 'TEXTAREA': return 'textbox';
      case 'INPUT': {
        const t = (el.getAttribute('type') || '').toLowerCase();
        if (t === 'hidden') return null;
        if (t === 'button' || t === 'submit' || t === 'reset' || t === 'image' || t === 'file') return 'button';
        if (t === 'checkbox') return 'checkbox';
        if (t === 'radio') return 'radio';
        if (t === 'range') return 'slider';
        if (t === 'number') return 'spinbutton';
        if (t === 'search') return 'searchbox';
        return 'textbox';
      }
    }
    if (el.isContentEditable && !(el.parentElement && el.parentElement.isContentEditable)) return 'textbox';
    return null;
  }

  function roleOf(el, tag) {
    const explicit = (el.getAttribute('role') || '').trim().split(/\s+/)[0].toLowerCase();
    if (explicit && WIDGET_ROLES.has(explicit)) return explicit;
    const implicit = implicitRole(el, tag);
    if (implicit) return implicit;
    if (explicit) return null;  // a non-widget role (region, presentation ...)
    if (el.hasAttribute('onclick')) return 'clickable';
    const tabindex = el.getAttribute('tabindex');
    if (tabindex !== null && parseInt(tabindex, 10) >= 0 && tag !== 'BODY' && tag !== 'HTML') return 'clickable';
    return null;
  }

  function byIds(el, attr) {
    const ids = (el.getAttribute(attr) || '').trim().split(/\s+/).filter(Boolean);
    if (!ids.length) return '';
    const root = el.getRootNode();
    return norm(ids.map((id) => {
      const ref = root.getElementById ? root.getElementById(id) : null;
      return ref ? ref.textContent : '';
    }).join(' '));
  }

  function contentText(el) {
    let s = norm(el.textContent);
    if (!s) {
      const img = el.querySelector('img[alt], [aria-label]');
      if (img) s = norm(img.getAttribute('alt') || img.getAttribute('aria-label'));
    }
    return s;
  }

  function nameOf(el, tag, role) {
    let s = byIds(el, 'aria-labelledby');
    if (s) return s;
    s = norm(el.getAttribute('aria-label'));
    if (s) return s;
    if (tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA') {
      const t = (el.getAttribute('type') || '').toLowerCase();
      if (tag === 'INPUT' && (t === 'submit' || t === 'reset' || t === 'button')) {
        return norm(el.value) || (t === 'submit' ? 'Submit' : t === 'reset' ? 'Reset' : '');
      }
      if (tag === 'INPUT' && t === 'image') return norm(el.getAttribute('alt')) || 'Submit';
      if (el.labels && el.labels.length) {
        s = norm(Array.from(el.labels).map((l) => {
          // a wrapping label's text without the control's own text (a select's options)
          let txt = '';
          for (const n of l.childNodes) {
            if (n === el || (n.nodeType === 1 && n.contains(el) && (n.tagName === 'SELECT' || n.tagName === 'TEXTAREA'))) continue;
            if (n.nodeType === 1 && (n.tagName === 'SELECT' || n.tagName === 'TEXTAREA')) continue;
            txt += ' ' + n.textContent;
          }
          return txt;
        }).join(' '));
        if (s) return s;
      }
      s = norm(el.getAttribute('placeholder')) || norm(el.getAttribute('title'));
      return s;
    }
    if (role === 'textbox') {  // contenteditable
      return norm(el.getAttribute('title')) || norm(el.getAttribute('placeholder') || el.getAttribute('aria-placeholder'));
    }
    s = contentText(el);
    if (s) return s;
    return norm(el.getAttribute('title')) || norm(el.getAttribute('alt'));
  }

  function visibleBox(el) {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  }

  function lineBreak() {
    if (line.length) {
      const s = line.join(' ').replace(/\s+/g, ' ').trim();
      if (s && s !== '|') lines.push(s);
      line = [];
    }
  }

  function emit(s) {
    if (!s || textLen > MAX_TEXT) return;
    line.push(s);
    textLen += s.length + 1;
  }

  function segment(el, tag) {
    const id = el.getAttribute('id');
    let seg = tag.toLowerCase();
    if (id && !/\d{3,}/.test(id) && id.length < 40) seg += '#' + id;
    else {
      const nm = el.getAttribute('name');
      if (nm && nm.length < 40) seg += '[name=' + nm + ']';
    }
    return seg;
  }

  function describe(el, tag, role, name, frames, ctx, win) {
    const attrs = {};
    for (const a of ['id', 'name', 'type', 'href', 'action']) {
      const v = el.getAttribute(a);
      if (v) attrs[a] = cut(v, 120);
    }
    const fp = { role, name: cut(name, 100), tag: tag.toLowerCase(), path: path.slice(-4).join('>'), ctx, attrs,
                 frames: frames.map((f) => f.name).join('>') };
    let key = hash([fp.role, fp.name, fp.tag, fp.path, fp.ctx, attrs.id || '', attrs.name || '', attrs.type || '',
                    attrs.href || '', fp.frames].join('\u241f'));
    seenKeys[key] = (seenKeys[key] || 0) + 1;
    if (seenKeys[key] > 1) key += '#' + seenKeys[key];
    let id = known[key];
    if (id === undefined) { id = next++; assigned[key] = id; known[key] = id; }
    el.setAttribute('data-cristal-id', String(id));
    marked.push(new WeakRef(el));

    const item = { id, role, name: cut(name, 100), tag: tag.toLowerCase(), key, fp,
                   frames: frames.map((f) => f.mark), states: [] };
    const t = (el.getAttribute('type') || '').toLowerCase();
    if (tag === 'INPUT' || tag === 'TEXTAREA') {
      if (t && t !== 'text' && !['submit', 'button', 'reset', 'image', 'checkbox', 'radio'].includes(t)) item.type = t;
      if (role === 'textbox' || role === 'searchbox' || role === 'spinbutton' || role === 'slider') {
        if (t === 'password') item.value = el.value ? '••••••••' : '';
        else item.value = cut(el.value || '', 200);
      }
      if (el.required) item.states.push('required');
      if (el.readOnly) item.states.push('readonly');
    }
    if (role === 'textbox' && el.isContentEditable && tag !== 'INPUT' && tag !== 'TEXTAREA') {
      item.value = cut(norm(el.textContent), 200);
    }
    if (role === 'checkbox' || role === 'radio' || role === 'switch' || role === 'menuitemcheckbox' || role === 'menuitemradio') {
      const checked = (tag === 'INPUT') ? el.checked : el.getAttribute('aria-checked') === 'true';
      item.states.push(checked ? 'checked' : 'unchecked');
    }
    if (tag === 'SELECT') {
      const opts = Array.from(el.options);
      const sel = opts.filter((o) => o.selected).map((o) => norm(o.label || o.textContent));
      item.value = sel.join(', ');
      item.options = opts.slice(0, 25).map((o) => norm(o.label || o.textContent));
      if (opts.length > 25) item.options.push('… ' + (opts.length - 25) + ' more');
      if (el.required) item.states.push('required');
    }
    if (el.disabled || el.getAttribute('aria-disabled') === 'true') item.states.push('disabled');
    const exp = el.getAttribute('aria-expanded');
    if (exp === 'true') item.states.push('expanded');
    else if (exp === 'false') item.states.push('collapsed');
    if (el.getAttribute('aria-selected') === 'true' || el.getAttribute('aria-current') && el.getAttribute('aria-current') !== 'false') item.states.push('selected');
    if (role === 'link') item.href = el.getAttribute('href') || '';
    if (tag === 'BUTTON' || (tag === 'INPUT' && (t === 'submit' || t === 'image'))) {
      const form = el.form;
      if (form && (tag === 'INPUT' || (el.getAttribute('type') || 'submit').toLowerCase() === 'submit')) {
        item.submit = true;
        item.formAction = el.getAttribute('formaction') || form.getAttribute('action') || '';
      }
    }
    let active = win.document.activeElement;
    while (active && active.shadowRoot && active.shadowRoot.activeElement) active = active.shadowRoot.activeElement;
    if (active === el) item.states.push('focused');
    const r = el.getBoundingClientRect();
    item.inView = r.bottom > 0 && r.right > 0 && r.top < win.innerHeight && r.left < win.innerWidth;
    return item;
  }

  function walkChildren(node, ctx, frames, vis, win) {
    for (const child of node.childNodes) walk(child, ctx, frames, vis, win);
  }

  function walk(node, ctx, frames, vis, win) {
    if (node.nodeType === 3) {
      if (vis) emit(node.data.replace(/\s+/g, ' ').trim());
      return;
    }
    if (node.nodeType !== 1) return;
    const el = node;
    const tag = el.tagName;
    if (SKIP.has(tag)) return;
    if (tag === 'SLOT') {
      for (const n of el.assignedNodes({ flatten: true })) walk(n, ctx, frames, vis, win);
      return;
    }
    const cs = win.getComputedStyle(el);
    if (cs.display === 'none') return;
    if (tag === 'INPUT' && (el.getAttribute('type') || '').toLowerCase() === 'hidden') return;
    const selfVis = cs.visibility === 'visible' && cs.contentVisibility !== 'hidden';
    const block = BLOCK.has(cs.display) || tag === 'BR' || tag === 'HR';
    if (block) lineBreak();
    if (cs.display === 'table-cell' && line.length) line.push('|');

    let myCtx = ctx;
    const explicit = (el.getAttribute('role') || '').toLowerCase();
    if (CONTEXT_TAGS.has(tag) || CONTEXT_ROLES.has(explicit)) myCtx = cut(norm(el.textContent), 60);

    path.push(segment(el, tag));
    try {
      const role = selfVis ? roleOf(el, tag) : null;
      let listed = false;
      if (role && (visibleBox(el) || role === 'checkbox' || role === 'radio')) {
        if (elements.length < MAX_ELEMENTS) {
          const name = nameOf(el, tag, role);
          const item = describe(el, tag, role, name, frames, myCtx, win);
          elements.push(item);
          emit('[' + item.id + ']');
          listed = true;
        } else {
          truncatedElements++;
        }
      }
      if (tag === 'IFRAME' || tag === 'FRAME') {
        let doc = null;
        try { doc = el.contentDocument; } catch (e) { doc = null; }
        if (doc && doc.body && selfVis) {
          const mark = String(++frameSeq);
          el.setAttribute('data-cristal-frame', mark);
          marked.push(new WeakRef(el));
          lineBreak();
          const fname = el.getAttribute('name') || el.getAttribute('title') || el.getAttribute('id') || 'frame';
          walk(doc.body, myCtx, frames.concat([{ mark, name: cut(fname, 40) }]), true, doc.defaultView);
          lineBreak();
        } else if (!doc && selfVis && visibleBox(el)) {
          emit('(embedded frame from another site: ' + cut(el.getAttribute('src') || '', 80) + ')');
        }
      } else if (tag === 'SELECT' || tag === 'TEXTAREA' || tag === 'INPUT') {
        // their text is the value, shown on the element's line
      } else if (tag === 'IMG') {
        const alt = norm(el.getAttribute('alt'));
        if (alt && selfVis && !listed) emit(alt);
      } else if (el.shadowRoot) {
        walkChildren(el.shadowRoot, myCtx, frames, selfVis, win);
      } else {
        walkChildren(el, myCtx, frames, selfVis, win);
      }
    } finally {
      path.pop();
    }
    if (block) lineBreak();
  }

  const body = document.body || document.documentElement;
  if (body) walk(body, '', [], true, window);
  lineBreak();
  window.__cristalMarked = marked;

  const se = document.scrollingElement || document.documentElement;
  return JSON.stringify({
    url: location.href,
    title: document.title || '',
    elements,
    text: lines.join('\n'),
    textTruncated: textLen > MAX_TEXT,
    truncatedElements,
    assigned,
    next,
    scroll: { y: Math.round(se ? se.scrollTop : 0), height: Math.round(se ? se.scrollHeight : 0), viewport: window.innerHeight },
    ms: performance.now() - t0,
  });
}
"""

# Waits until the DOM has been quiet for ``quiet`` ms (true) or ``cap`` ms have passed (false).
QUIET_JS = r"""
([quiet, cap]) => new Promise((resolve) => {
  let timer = null;
  let finished = false;
  const finish = (value) => { if (!finished) { finished = true; mo.disconnect(); clearTimeout(timer); resolve(value); } };
  const mo = new MutationObserver(() => { clearTimeout(timer); timer = setTimeout(() => finish(true), quiet); });
  mo.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
  timer = setTimeout(() => finish(true), quiet);
  setTimeout(() => finish(false), cap);
})
"""

# What pressing a key on the focused element would submit: the focused control and its form's default button.
FOCUS_JS = r"""
() => {
  let a = document.activeElement;
  while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
  while (a && a.tagName === 'IFRAME') {
    try { const d = a.contentDocument; if (!d) break; a = d.activeElement; } catch (e) { break; }
  }
  if (!a || a === document.body) return null;
  const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
  const label = norm(a.getAttribute('aria-label') || a.value && a.tagName === 'INPUT' && ['submit','button'].includes((a.type||'').toLowerCase()) && a.value || a.textContent).slice(0, 100);
  const out = { tag: a.tagName.toLowerCase(), type: (a.getAttribute('type') || '').toLowerCase(), name: label,
                role: a.getAttribute('role') || '', form: null };
  const form = a.form || (a.closest && a.closest('form'));
  if (form) {
    const submit = form.querySelector('button:not([type]), button[type=submit], input[type=submit], input[type=image]');
    out.form = {
      action: form.getAttribute('action') || '',
      submit: submit ? norm(submit.getAttribute('aria-label') || (submit.tagName === 'INPUT' ? (submit.value || 'Submit') : submit.textContent)).slice(0, 100) : '',
    };
  }
  return out;
}
"""
