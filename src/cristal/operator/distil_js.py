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
  const MAX_OPTIONS = 30;
  const assigned = {};
  const elements = [];
  const seenKeys = {};
  const lines = [];
  let line = [];
  let textLen = 0;
  let truncatedElements = 0;
  let frameSeq = 0;
  const path = [];
  // Elements with click-like listeners, found by LISTENERS_JS through the DevTools protocol just before.
  const listening = window.__cristalListening || null;
  const dropped = new Set();  // IDs of pointer-only elements that turned out to wrap listed ones

  // Clear the marks of the previous observation (kept as weak references on the top window).
  const prev = window.__cristalMarked || [];
  for (const ref of prev) {
    const el = ref.deref();
    if (el) { el.removeAttribute('data-cristal-id'); }
  }
  const marks = [];  // [element, id]: set after the walk, so reading styles never sees a changed DOM

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
  const labelText = (s) => norm(s).replace(/\s*[:*]+\s*$/, '').trim();

  const SKIP = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'HEAD', 'META', 'LINK', 'TITLE']);
  const BLOCK = new Set(['block', 'flex', 'grid', 'list-item', 'table', 'table-row', 'table-caption',
                         'flow-root', 'table-row-group', 'table-header-group', 'table-footer-group']);
  const INLINE_BOX = new Set(['inline-block', 'inline-flex', 'inline-grid', 'inline-table']);
  const WIDGET_ROLES = new Set(['button', 'link', 'checkbox', 'radio', 'textbox', 'searchbox', 'combobox',
    'listbox', 'slider', 'spinbutton', 'switch', 'tab', 'menuitem', 'menuitemcheckbox', 'menuitemradio',
    'option', 'treeitem', 'gridcell']);
  const NO_NAME_FROM_CONTENT = new Set(['listbox', 'combobox', 'textbox', 'searchbox', 'slider', 'spinbutton', 'tree', 'grid']);
  const CHECKABLE = new Set(['checkbox', 'radio', 'switch', 'menuitemcheckbox', 'menuitemradio']);
  const CONTEXT_TAGS = new Set(['TR', 'LI']);
  const CONTEXT_ROLES = new Set(['row', 'listitem', 'article']);
  const GROUP_ROLES = new Set(['group', 'tree', 'list', 'listbox', 'menu']);
  const ITEM_CONTAINERS = new Set(['UL', 'OL', 'TBODY', 'TABLE', 'DL', 'MENU']);
  const NATIVE_OPERABLE = 'a[href],button,input:not([type=hidden]),select,textarea,summary,[role=button],[role=link],' +
    '[role=option],[role=treeitem],[role=menuitem],[role=tab],[role=checkbox],[role=radio],[tabindex],[onclick]';

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

  function explicitRole(el) {
    return (el.getAttribute('role') || '').trim().split(/\s+/)[0].toLowerCase();
  }

  function roleOf(el, tag) {
    const explicit = explicitRole(el);
    if (explicit && WIDGET_ROLES.has(explicit)) return explicit;
    const implicit = implicitRole(el, tag);
    if (implicit) return implicit;
    if (explicit) return null;  // a non-widget role (region, presentation ...)
    if (el.hasAttribute('onclick')) return 'clickable';
    const tabindex = el.getAttribute('tabindex');
    if (tabindex !== null && parseInt(tabindex, 10) >= 0 && tag !== 'BODY' && tag !== 'HTML') return 'clickable';
    return null;
  }

  // The role shown for an element that is operable only through script (a listener, a pointer cursor).
  function scriptRole(el, tag) {
    const explicit = explicitRole(el);
    if (explicit && explicit !== 'presentation' && explicit !== 'none' && explicit !== 'generic') return explicit;
    if (tag === 'A') return 'link';
    if (tag === 'TR') return 'row';
    if (tag === 'LI') return 'listitem';
    if (tag === 'OPTION') return 'option';
    if (tag === 'IMG' || tag === 'svg') return 'image';
    return 'clickable';
  }

  const isGroup = (n) => n.nodeType === 1 && (n.tagName === 'UL' || n.tagName === 'OL' || GROUP_ROLES.has(explicitRole(n)));

  // Rendered text of an element for its name: inline boundaries join without a space (<b>Bern</b>ardine),
  // boxes (blocks, cells, inline-blocks) are separated, hidden parts and nested groups (a tree item's children) left out.
  function contentText(el, excludeGroups) {
    let s = '';
    for (const n of el.childNodes) {
      if (s.length > 400) break;
      if (n.nodeType === 3) { s += n.data; continue; }
      if (n.nodeType !== 1) continue;
      const t = n.tagName;
      if (SKIP.has(t) || (excludeGroups && isGroup(n)) || n.getAttribute('aria-hidden') === 'true') continue;
      if (t === 'IMG' || t === 'AREA' || (t === 'INPUT' && (n.type || '') === 'image')) {
        s += ' ' + (n.getAttribute('alt') || '') + ' ';
        continue;
      }
      if (t === 'INPUT' || t === 'SELECT' || t === 'TEXTAREA') continue;
      const cs = getComputedStyle(n);
      if (cs.display === 'none' || cs.visibility === 'hidden') continue;
      let inner = (excludeGroups && n.querySelector('ul,ol,[role=group]')) ? contentText(n, true)
        : (typeof n.innerText === 'string' ? n.innerText : n.textContent);
      if (!norm(inner)) {
        inner = n.getAttribute('aria-label') || n.getAttribute('title') || '';
        if (!inner) {
          const img = n.querySelector('img[alt], [aria-label], title');
          if (img) inner = img.getAttribute('alt') || img.getAttribute('aria-label') || img.textContent;
        }
      }
      s += (cs.display === 'inline' || cs.display === 'contents') ? inner : ' ' + inner + ' ';
    }
    return norm(s);
  }

  function byIds(el, attr) {
    const ids = (el.getAttribute(attr) || '').trim().split(/\s+/).filter(Boolean);
    if (!ids.length) return '';
    const root = el.getRootNode();
    return norm(ids.map((id) => {
      const ref = root.getElementById ? root.getElementById(id) : null;
      if (!ref) return '';
      return norm(ref.getAttribute('aria-label')) || contentText(ref, false) || norm(ref.textContent);
    }).join(' '));
  }

  const CONTROL_SELECTOR = 'input:not([type=hidden]),select,textarea,button';

  // Text a person reads as the label of an unlabelled control: a <label> linked to nothing, or a short text,
  // right before the control or before the wrapper (a table cell, a field row) the control starts.
  // Returns [text, fromLabelElement].
  function precedingLabel(el) {
    let node = el;
    for (let depth = 0; depth < 3 && node; depth++) {
      let prev = node.previousSibling;
      while (prev && ((prev.nodeType === 3 && !prev.data.trim()) || prev.nodeType === 8 ||
                      (prev.nodeType === 1 && (prev.tagName === 'BR' || SKIP.has(prev.tagName))))) prev = prev.previousSibling;
      if (prev) {
        if (prev.nodeType === 3) { const t = labelText(prev.data); return t.length <= 60 ? [t, false] : ['', false]; }
        if (prev.nodeType !== 1) return ['', false];
        const t = prev.tagName;
        if (/^H[1-6]$/.test(t) || prev.matches(CONTROL_SELECTOR) || prev.querySelector(CONTROL_SELECTOR)) return ['', false];
        if (t === 'LABEL' && prev.control && prev.control !== el) return ['', false];
        const txt = labelText(typeof prev.innerText === 'string' ? prev.innerText : prev.textContent);
        return txt.length <= 60 ? [txt, t === 'LABEL'] : ['', false];
      }
      node = node.parentElement;
      if (!node || node.tagName === 'BODY' || node.tagName === 'FORM' || node.tagName === 'FIELDSET') break;
    }
    return ['', false];
  }

  // The accessible name, in the order assistive technologies compute it (accname), then the unlinked label.
  function nameOf(el, tag, role, item) {
    let s = byIds(el, 'aria-labelledby');
    if (s) return s;
    s = norm(el.getAttribute('aria-label'));
    if (s) return s;
    if (tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA' || (role === 'textbox' && el.isContentEditable)) {
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
            if (n === el || (n.nodeType === 1 && n.matches && n.matches('select,textarea,input'))) continue;
            if (n.nodeType === 1 && n.contains(el)) {
              txt += ' ' + Array.from(n.childNodes).filter((c) => c !== el && !(c.nodeType === 1 && c.contains(el)))
                .map((c) => c.textContent).join(' ');
              continue;
            }
            txt += ' ' + n.textContent;
          }
          return txt;
        }).join(' '));
        if (s) return labelText(s);
      }
      const [before, isLabel] = precedingLabel(el);
      if (before && isLabel) return before;
      const placeholder = norm(el.getAttribute('placeholder') || el.getAttribute('aria-placeholder'));
      if (before) { if (placeholder && placeholder !== before) item.hint = cut(placeholder, 60); return before; }
      return placeholder || norm(el.getAttribute('title'));
    }
    if (NO_NAME_FROM_CONTENT.has(role)) return norm(el.getAttribute('title'));  // accname: a list box is not named by its options
    s = contentText(el, tag === 'LI' || role === 'treeitem' || role === 'listitem');
    const title = norm(el.getAttribute('title'));
    if (s && title && !/[\p{L}\p{N}]/u.test(s)) return title;  // an icon (a star, a cross) with a tooltip: the tooltip says it
    if (s) return s;
    return title || norm(el.getAttribute('alt'));
  }

  function visibleBox(el) {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  }

  function lineBreak() {
    if (line.length) {
      const s = line.join('').replace(/\s+/g, ' ').trim();
      if (s && s !== '|') lines.push(s);
      line = [];
    }
  }

  function emit(s) {
    if (!s || textLen > MAX_TEXT) return;
    line.push(s);
    textLen += s.length;
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

  function hasClickListener(el) {
    return listening !== null && listening.has(el) && el.tagName !== 'BODY' && el.tagName !== 'HTML';
  }

  // A container whose listener serves its repeated children (event delegation): those children are the
  // things a person clicks. Only when nothing inside is operable by itself (no native control, no pointer cursor
  // of its own), else those are what gets listed.
  // Returns the items, 'inside' (operable things inside: they are what is listed), or null (the element itself).
  function delegation(el, tag, cs, win) {
    if (cs.cursor === 'pointer') return null;
    if (el.querySelector(NATIVE_OPERABLE)) return 'inside';
    let checked = 0;
    for (const d of el.querySelectorAll('*')) {
      if (++checked > 300) break;
      if (win.getComputedStyle(d).cursor === 'pointer' && d.parentElement
          && win.getComputedStyle(d.parentElement).cursor !== 'pointer') return 'inside';
    }
    let items;
    if (tag === 'TABLE') items = Array.from(el.tBodies).flatMap((b) => Array.from(b.rows));
    else items = Array.from(el.children);
    if (items.length < 2) return null;
    if (!ITEM_CONTAINERS.has(tag) && !GROUP_ROLES.has(explicitRole(el)) && explicitRole(el) !== 'grid') {
      const kind = (n) => n.tagName + '.' + (n.getAttribute('class') || '');
      const counts = {};
      for (const n of items) counts[kind(n)] = (counts[kind(n)] || 0) + 1;
      const top = Math.max(...Object.values(counts));
      if (top < 2 || top < items.length * 0.8) return null;
    }
    return new Set(items);
  }

  function describe(el, tag, role, frames, ctx, win, how) {
    const item = { id: 0, role, name: '', tag: tag.toLowerCase(), key: '', fp: null, frames: frames.map((f) => f.mark), states: [] };
    // A row or a card found through script is named by all its text, which the visible text shows anyway: keep it short.
    const name = cut(nameOf(el, tag, role, item), how ? 80 : 100);
    item.name = name;
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
    marks.push([el, id]);
    item.id = id; item.key = key; item.fp = fp;
    if (how) item.via = how;  // listener | pointer | delegated: found through script, not markup

    const st = item.states;
    const t = (el.getAttribute('type') || '').toLowerCase();
    if (tag === 'INPUT' || tag === 'TEXTAREA') {
      if (t && t !== 'text' && !['submit', 'button', 'reset', 'image', 'checkbox', 'radio'].includes(t)) item.type = t;
      if (role === 'textbox' || role === 'searchbox' || role === 'spinbutton' || role === 'slider' || role === 'combobox') {
        if (t === 'password') item.value = el.value ? '••••••••' : '';
        else if (t === 'file') item.value = Array.from(el.files || []).map((f) => f.name).join(', ');
        else item.value = cut(el.value || '', 200);
      }
      if (t === 'file') { item.value = Array.from(el.files || []).map((f) => f.name).join(', '); item.file = true; }
      if (el.required) st.push('required');
      if (el.readOnly) st.push('readonly');
    } else if (el.getAttribute('aria-readonly') === 'true') st.push('readonly');
    if (role === 'textbox' && el.isContentEditable && tag !== 'INPUT' && tag !== 'TEXTAREA') {
      item.value = cut(norm(el.textContent), 200);
    }
    if (CHECKABLE.has(role) || el.hasAttribute('aria-checked')) {
      const aria = el.getAttribute('aria-checked');
      const checked = (tag === 'INPUT' && (t === 'checkbox' || t === 'radio')) ? (el.indeterminate ? 'mixed' : el.checked)
        : aria === 'mixed' ? 'mixed' : aria === 'true';
      st.push(checked === 'mixed' ? 'mixed' : checked ? 'checked' : 'unchecked');
    }
    const pressed = el.getAttribute('aria-pressed');
    if (pressed === 'true' || pressed === 'mixed') st.push('pressed');
    else if (pressed === 'false') st.push('not pressed');
    if (tag === 'SELECT') {
      const opts = Array.from(el.options);
      const sel = opts.filter((o) => o.selected).map((o) => norm(o.label || o.textContent));
      item.value = sel.join(', ');
      if (role === 'combobox') {
        item.options = opts.slice(0, 25).map((o) => norm(o.label || o.textContent));
        if (opts.length > 25) item.options.push('… ' + (opts.length - 25) + ' more');
      } else if (el.multiple) st.push('multiselectable');
      if (el.required) st.push('required');
    }
    if (el.getAttribute('aria-multiselectable') === 'true') st.push('multiselectable');
    if (el.disabled || el.getAttribute('aria-disabled') === 'true' || (el.matches && el.matches(':disabled'))) st.push('disabled');
    const exp = el.getAttribute('aria-expanded');
    if (exp === 'true') st.push('expanded');
    else if (exp === 'false') st.push('collapsed');
    else if (tag === 'SUMMARY' && el.parentElement && el.parentElement.tagName === 'DETAILS') {
      st.push(el.parentElement.open ? 'expanded' : 'collapsed');
    }
    if (el.getAttribute('aria-selected') === 'true') st.push('selected');
    else if (how && el.classList && Array.from(el.classList).some((c) => /^(is-)?(selected|active)$/.test(c))) st.push('selected');
    const current = el.getAttribute('aria-current');
    if (current && current !== 'false') st.push('current');
    if (el.getAttribute('aria-invalid') === 'true') st.push('invalid');
    if (role === 'link' && el.hasAttribute('href')) item.href = el.getAttribute('href') || '';
    if (tag === 'BUTTON' || (tag === 'INPUT' && (t === 'submit' || t === 'image'))) {
      const form = el.form;
      if (form && (tag === 'INPUT' || (el.getAttribute('type') || 'submit').toLowerCase() === 'submit')) {
        item.submit = true;
        item.formAction = el.getAttribute('formaction') || form.getAttribute('action') || '';
      }
    }
    let active = win.document.activeElement;
    while (active && active.shadowRoot && active.shadowRoot.activeElement) active = active.shadowRoot.activeElement;
    if (active === el) st.push('focused');
    const r = el.getBoundingClientRect();
    item.inView = r.bottom > 0 && r.right > 0 && r.top < win.innerHeight && r.left < win.innerWidth;
    if (role === 'treeitem' || tag === 'LI' || r.height > 60) {
      // A big box (a tree item with its open children): click its own first line, not its middle.
      const own = ownTextRect(el);
      if (own && (own.top - r.top > 2 || r.height > own.height * 1.5)) {
        item.clickAt = { x: Math.round(Math.min(r.width - 1, Math.max(1, own.left - r.left + Math.min(own.width / 2, 40)))),
                         y: Math.round(Math.min(r.height - 1, Math.max(1, own.top - r.top + own.height / 2))) };
      }
    }
    return item;
  }

  function ownTextRect(el) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    let n;
    while ((n = walker.nextNode())) {
      if (!n.data.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(n);
      const rect = range.getBoundingClientRect();
      if (rect.width > 0 && rect.height > 0) return rect;
    }
    return null;
  }

  function listOptions(sel, tag, frames, win) {
    const opts = Array.from(sel.options);
    path.push(segment(sel, tag));
    try {
      for (const o of opts.slice(0, MAX_OPTIONS)) {
        if (elements.length >= MAX_ELEMENTS) { truncatedElements++; continue; }
        const item = describe(o, 'OPTION', 'option', frames, sel.getAttribute('name') || '', win, '');
        item.name = cut(norm(o.label || o.textContent), 100);
        if (o.selected) item.states.unshift('selected');
        if (o.disabled) item.states.push('disabled');
        item.inSelect = true;
        item.multiple = sel.multiple;
        elements.push(item);
      }
    } finally { path.pop(); }
    return opts.length > MAX_OPTIONS ? opts.length - MAX_OPTIONS : 0;
  }

  function walkChildren(node, st) {
    for (const child of node.childNodes) walk(child, st);
  }

  // st: { ctx, frames, vis, win, inside (listed ancestor), items (children a delegating ancestor serves) }
  function walk(node, st) {
    if (node.nodeType === 3) {
      if (st.vis) emit(node.data.replace(/\s+/g, ' '));
      return;
    }
    if (node.nodeType !== 1) return;
    const el = node;
    const tag = el.tagName;
    if (SKIP.has(tag)) return;
    const win = st.win;
    if (tag === 'SLOT') {
      for (const n of el.assignedNodes({ flatten: true })) walk(n, st);
      return;
    }
    const cs = win.getComputedStyle(el);
    if (cs.display === 'none') return;
    if (tag === 'INPUT' && (el.getAttribute('type') || '').toLowerCase() === 'hidden') return;
    const selfVis = cs.visibility === 'visible' && cs.contentVisibility !== 'hidden';
    // Items of a flex row sit side by side: boxes on one line, not blocks.
    const block = (BLOCK.has(cs.display) && !st.flexRow) || tag === 'BR' || tag === 'HR';
    const box = INLINE_BOX.has(cs.display) || (st.flexRow && BLOCK.has(cs.display));
    if (block) lineBreak();
    else if (box) emit(' ');
    if (cs.display === 'table-cell' && el.previousElementSibling) emit(' | ');  // between cells, not before the first

    let myCtx = st.ctx;
    const explicit = explicitRole(el);
    if (CONTEXT_TAGS.has(tag) || CONTEXT_ROLES.has(explicit)) myCtx = cut(norm(el.textContent), 60);

    path.push(segment(el, tag));
    try {
      let role = selfVis ? roleOf(el, tag) : null;
      let how = '';
      let items = null;
      let soft = false;
      if (!role && selfVis && tag !== 'BODY' && tag !== 'HTML' && tag !== 'LABEL' && tag !== 'OPTION') {
        if (st.items && st.items.has(el)) { role = scriptRole(el, tag); how = 'delegated'; }
        else if (hasClickListener(el)) {
          const found = delegation(el, tag, cs, win);
          if (found === null) { role = scriptRole(el, tag); how = 'listener'; }
          else if (found !== 'inside') items = found;
        } else if (cs.cursor === 'pointer' && !st.inside) {
          const parent = el.parentElement || (el.parentNode && el.parentNode.host);
          if (!parent || win.getComputedStyle(parent).cursor !== 'pointer') { role = scriptRole(el, tag); how = 'pointer'; soft = true; }
        }
      }
      let listed = null;
      let before = 0;
      if (role && (visibleBox(el) || role === 'checkbox' || role === 'radio')) {
        if (elements.length < MAX_ELEMENTS) {
          const item = describe(el, tag, role, st.frames, myCtx, win, how);
          if (soft && !item.name) { /* a pointer cursor on something with nothing to say: not a control */ }
          else {
            elements.push(item);
            emit(' \u0002' + item.id + '\u0003 ');
            listed = item;
            before = elements.length;
          }
        } else {
          truncatedElements++;
        }
      }
      const flexRow = (cs.display === 'flex' || cs.display === 'inline-flex') && !cs.flexDirection.startsWith('column');
      const child = { ctx: myCtx, frames: st.frames, vis: selfVis, win, inside: st.inside || !!listed, items: items || st.items, flexRow };
      if (tag === 'IFRAME' || tag === 'FRAME') {
        let doc = null;
        try { doc = el.contentDocument; } catch (e) { doc = null; }
        if (doc && doc.body && selfVis) {
          const mark = String(++frameSeq);
          el.setAttribute('data-cristal-frame', mark);
          lineBreak();
          const fname = el.getAttribute('name') || el.getAttribute('title') || el.getAttribute('id') || 'frame';
          walk(doc.body, { ctx: myCtx, frames: st.frames.concat([{ mark, name: cut(fname, 40) }]), vis: true,
                           win: doc.defaultView, inside: false, items: null });
          lineBreak();
        } else if (!doc && selfVis && visibleBox(el)) {
          emit(' (embedded frame from another site: ' + cut(el.getAttribute('src') || '', 80) + ') ');
        }
      } else if (tag === 'SELECT') {
        if (listed && role === 'listbox') {
          const more = listOptions(el, tag, st.frames, win);
          if (more) listed.moreOptions = more;
        }
      } else if (tag === 'TEXTAREA' || tag === 'INPUT') {
        // their text is the value, shown on the element's line
      } else if (tag === 'IMG') {
        const alt = norm(el.getAttribute('alt'));
        if (alt && selfVis && !listed) emit(' ' + alt + ' ');
      } else if (el.shadowRoot) {
        walkChildren(el.shadowRoot, child);
      } else {
        walkChildren(el, child);
      }
      if (listed && soft && elements.length > before) {
        // a pointer cursor on a wrapper (a card around its link) whose listed insides say all it says: they are the controls
        const inner = elements.slice(before).reduce((n, e) => n + (e.name || '').length, 0);
        if (inner >= 0.7 * listed.name.length) {
          elements.splice(before - 1, 1);
          dropped.add(listed.id);
        }
      }
    } finally {
      path.pop();
    }
    if (block) lineBreak();
    else if (box) emit(' ');
  }

  const body = document.body || document.documentElement;
  if (body) walk(body, { ctx: '', frames: [], vis: true, win: window, inside: false, items: null });
  lineBreak();
  const marked = [];
  for (const [el, id] of marks) {
    if (dropped.has(id)) continue;
    el.setAttribute('data-cristal-id', String(id));
    marked.push(new WeakRef(el));
  }
  for (const el of document.querySelectorAll('[data-cristal-frame]')) marked.push(new WeakRef(el));
  window.__cristalMarked = marked;
  const text = lines.join('\n').replace(/\u0002(\d+)\u0003/g, (m, id) => (dropped.has(+id) ? '' : '[' + id + ']'))
    .replace(/ {2,}/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && l !== '|').join('\n');

  const se = document.scrollingElement || document.documentElement;
  return JSON.stringify({
    url: location.href,
    title: document.title || '',
    elements,
    text,
    textTruncated: textLen > MAX_TEXT,
    truncatedElements,
    assigned,
    next,
    scroll: { y: Math.round(se ? se.scrollTop : 0), height: Math.round(se ? se.scrollHeight : 0), viewport: window.innerHeight },
    ms: performance.now() - t0,
  });
}
"""

# Run through the DevTools protocol with the console's command-line API (``getEventListeners``), just before
# DISTIL_JS: remembers, in a WeakMap on the top window, every element (open shadow roots and same-origin iframes
# included) with a listener for a click-like event, whether added by addEventListener, ``el.onclick = ...`` or
# an attribute. Listeners on the document or window (page-wide delegation) are not elements and are not listed.
LISTENERS_JS = r"""
(() => {
  if (typeof getEventListeners !== 'function') return -1;
  const TYPES = ['click', 'mousedown', 'mouseup', 'pointerdown', 'pointerup', 'touchstart', 'dblclick'];
  const found = new WeakMap();
  let count = 0;
  const visit = (root) => {
    for (const el of root.querySelectorAll('*')) {
      let l = null;
      try { l = getEventListeners(el); } catch (e) { l = null; }
      if (l) {
        const types = TYPES.filter((t) => l[t] && l[t].length);
        if (types.length) { found.set(el, types.join(' ')); count++; }
      }
      if (el.shadowRoot) visit(el.shadowRoot);
      if (el.tagName === 'IFRAME' || el.tagName === 'FRAME') {
        let doc = null;
        try { doc = el.contentDocument; } catch (e) { doc = null; }
        if (doc) visit(doc);
      }
    }
  };
  visit(document);
  window.__cristalListening = found;
  return count;
})()
"""

# Installed in every frame before the page's own scripts (``add_init_script``): keeps track of the short timers
# (at most MAX_MS) a page schedules while an action is being carried out -- the debounce of an autocomplete, a
# delayed re-render -- so that settling waits until they have run instead of a fixed delay after every action.
# Timers scheduled outside that window (a page's own polling) are never waited for.
TIMERS_INIT_JS = r"""
(() => {
  if (window.__cristalTimers) return;
  const MAX_MS = 2000;
  const pending = new Map();
  let armed = false;
  const st = window.setTimeout, ct = window.clearTimeout, si = window.setInterval, ci = window.clearInterval;
  const track = (native, fn, delay, rest) => {
    const ms = Number(delay) || 0;
    if (!armed || ms > MAX_MS || typeof fn !== 'function') return native.call(window, fn, delay, ...rest);
    let id = 0;
    const wrapped = function () { pending.delete(id); return fn.apply(this, arguments); };
    id = native.call(window, wrapped, delay, ...rest);
    pending.set(id, performance.now() + ms);
    return id;
  };
  window.setTimeout = function setTimeout(fn, delay, ...rest) { return track(st, fn, delay, rest); };
  window.setInterval = function setInterval(fn, delay, ...rest) { return track(si, fn, delay, rest); };
  window.clearTimeout = function clearTimeout(id) { pending.delete(id); return ct.call(window, id); };
  window.clearInterval = function clearInterval(id) { pending.delete(id); return ci.call(window, id); };
  Object.defineProperty(window, '__cristalTimers', { value: Object.freeze({
    arm() { armed = true; pending.clear(); },
    disarm() { armed = false; },
    // ms until the last tracked timer is due (0: none pending)
    due() { const now = performance.now(); let ms = 0; for (const at of pending.values()) ms = Math.max(ms, at - now, 1); return ms; },
  }) });
})();
"""

# Waits until the DOM has been quiet for ``quiet`` ms and the timers an action scheduled have run (true),
# or ``cap`` ms have passed (false).
QUIET_JS = r"""
([quiet, cap]) => new Promise((resolve) => {
  let timer = null;
  let finished = false;
  const T = window.__cristalTimers;
  const finish = (value) => {
    if (!finished) { finished = true; mo.disconnect(); clearTimeout(timer); clearTimeout(capTimer); resolve(value); }
  };
  const check = () => {
    const due = T ? T.due() : 0;
    if (due > 0) { timer = setTimeout(check, due + quiet); return; }
    finish(true);
  };
  const mo = new MutationObserver(() => { clearTimeout(timer); timer = setTimeout(check, quiet); });
  mo.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
  timer = setTimeout(check, quiet);
  const capTimer = setTimeout(() => finish(false), cap);
})
"""

# What is at a point of the viewport (for click_point): the listed element it belongs to, or a short description.
POINT_JS = r"""
([x, y]) => {
  let el = document.elementFromPoint(x, y);
  if (!el) return null;
  while (el.shadowRoot) { const inner = el.shadowRoot.elementFromPoint(x, y); if (!inner || inner === el) break; el = inner; }
  const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
  const listed = el.closest('[data-cristal-id]');
  const text = norm(typeof el.innerText === 'string' ? el.innerText : el.textContent).slice(0, 100);
  return { id: listed ? parseInt(listed.getAttribute('data-cristal-id'), 10) : null, tag: el.tagName.toLowerCase(), text };
}
"""

# Whether the middle (or the given point) of an element receives a click, and if not what covers it.
COVER_JS = r"""
(el, at) => {
  const r = el.getBoundingClientRect();
  const x = at ? r.left + at.x : r.left + r.width / 2, y = at ? r.top + at.y : r.top + r.height / 2;
  if (x < 0 || y < 0 || x > innerWidth || y > innerHeight) return null;
  let hit = el.ownerDocument.elementFromPoint(x, y);
  while (hit && hit.shadowRoot) { const inner = hit.shadowRoot.elementFromPoint(x, y); if (!inner || inner === hit) break; hit = inner; }
  if (!hit || hit === el || el.contains(hit) || (hit.getRootNode().host && el.contains(hit.getRootNode().host))) return null;
  if (hit.tagName === 'LABEL' && hit.control === el) return null;
  if (el.labels && Array.from(el.labels).some((l) => l.contains(hit))) return null;
  const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
  const listed = hit.closest('[data-cristal-id]');
  return { id: listed ? parseInt(listed.getAttribute('data-cristal-id'), 10) : null, tag: hit.tagName.toLowerCase(),
           text: norm(typeof hit.innerText === 'string' ? hit.innerText : hit.textContent).slice(0, 80) };
}
"""

# Click on an <option> of a list box: a multi-select toggles it (adds or removes), a single one selects it;
# the page hears the same input and change events as from a person.
OPTION_JS = r"""
(option) => {
  const select = option.closest('select');
  if (!select) return null;
  if (option.disabled || select.disabled) return 'disabled';
  if (select.multiple) option.selected = !option.selected; else option.selected = true;
  select.dispatchEvent(new Event('input', { bubbles: true }));
  select.dispatchEvent(new Event('change', { bubbles: true }));
  return option.selected ? 'selected' : 'unselected';
}
"""

# Resolve what the model named (labels or values) to the option values of a <select>: [values, unknown names, labels].
SELECT_JS = r"""
(select, wanted) => {
  const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
  const opts = Array.from(select.options);
  const values = [], unknown = [];
  for (const w of wanted) {
    const n = norm(w);
    const o = opts.find((o) => norm(o.label || o.textContent) === n) || opts.find((o) => o.value === w)
      || opts.find((o) => norm(o.label || o.textContent).toLowerCase() === n.toLowerCase());
    if (o) values.push(o.value); else unknown.push(w);
  }
  return [values, unknown, opts.slice(0, 15).map((o) => norm(o.label || o.textContent))];
}
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
  const label = norm(a.getAttribute('aria-label')
    || a.value && a.tagName === 'INPUT' && ['submit','button'].includes((a.type||'').toLowerCase()) && a.value
    || a.textContent).slice(0, 100);
  const out = { tag: a.tagName.toLowerCase(), type: (a.getAttribute('type') || '').toLowerCase(), name: label,
                role: a.getAttribute('role') || '', form: null };
  const form = a.form || (a.closest && a.closest('form'));
  if (form) {
    const submit = form.querySelector('button:not([type]), button[type=submit], input[type=submit], input[type=image]');
    out.form = {
      action: form.getAttribute('action') || '',
      submit: submit ? norm(submit.getAttribute('aria-label')
        || (submit.tagName === 'INPUT' ? (submit.value || 'Submit') : submit.textContent)).slice(0, 100) : '',
    };
  }
  return out;
}
"""

# Whether a form of the page that posts to the URL is a sign-in form (a password field, or a field the page
# marks as the user name): signing in changes no data of the application, so its post needs no approval.
SIGNIN_JS = r"""
(url) => {
  const forms = [...document.forms].filter((f) => {
    try { return new URL(f.getAttribute('action') || '', document.baseURI).href === url; } catch (e) { return false; }
  });
  return forms.some((f) => f.querySelector('input[type=password], input[autocomplete~=username], '
                                          + 'input[autocomplete~=current-password]') !== null
                           && f.querySelector('input[autocomplete~=new-password]') === null);
}
"""
