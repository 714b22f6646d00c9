"use strict";
// A safe subset of Markdown for model answers, built as DOM nodes: every piece of the model's text becomes a
// text node, so markup in an answer (an img with onerror, a script element) is shown as the characters it is and never
// parsed as HTML. Supported: paragraphs, headings, bullet and numbered lists, block quotes, fenced code,
// `code`, **bold**, *italic*, [links](URL) to http, https and mailto addresses only and citation markers [n].

function renderMarkdown(source, citation) {
  // citation(n): a node for marker [n] (a button when the answer has that citation), or null for plain text.
  const root = document.createDocumentFragment();
  const lines = String(source || "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  let paragraph = [];
  const flush = () => {
    if (paragraph.length) root.append(mdNode("p", mdInline(paragraph.join("\n"), citation)));
    paragraph = [];
  };
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (/^\s*(```|~~~)/.test(line)) {
      flush();
      const fence = line.trim().slice(0, 3);
      const code = [];
      for (i++; i < lines.length && !lines[i].trim().startsWith(fence); i++) code.push(lines[i]);
      i++;
      root.append(mdNode("pre", [mdNode("code", [document.createTextNode(code.join("\n"))])]));
      continue;
    }
    if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
      flush();
      // Answers sit under the page's own headings: # becomes h3, and so on down to h6.
      root.append(mdNode("h" + Math.min(6, m[1].length + 2), mdInline(m[2], citation)));
      i++;
      continue;
    }
    if (/^\s*([-*+]|\d+[.)])\s+/.test(line)) {
      flush();
      const ordered = /^\s*\d/.test(line);
      const items = [];
      while (i < lines.length && (m = /^\s*([-*+]|\d+[.)])\s+(.*)$/.exec(lines[i])) && /^\s*\d/.test(lines[i]) === ordered) {
        items.push(mdNode("li", mdInline(m[2], citation)));
        i++;
      }
      root.append(mdNode(ordered ? "ol" : "ul", items));
      continue;
    }
    if (/^\s*>/.test(line)) {
      flush();
      const quoted = [];
      for (; i < lines.length && /^\s*>/.test(lines[i]); i++) quoted.push(lines[i].replace(/^\s*>\s?/, ""));
      root.append(mdNode("blockquote", mdInline(quoted.join("\n"), citation)));
      continue;
    }
    if (!line.trim()) flush();
    else paragraph.push(line);
    i++;
  }
  flush();
  return root;
}

function mdNode(tag, children) {
  const node = document.createElement(tag);
  node.append(...children);
  return node;
}

// Only * marks emphasis: _ and __ are left alone, as identifiers such as __init__ are common in answers.
const MD_INLINE = /`([^`]+)`|\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*|\[([^\]\n]+)\]\(([^)\s]+)\)|\[(\d{1,3})\]|\n/g;

function mdInline(text, citation) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(MD_INLINE)) {
    if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
    last = m.index + m[0].length;
    if (m[1] !== undefined) out.push(mdNode("code", [document.createTextNode(m[1])]));
    else if (m[2] !== undefined) out.push(mdNode("strong", mdInline(m[2], citation)));
    else if (m[3] !== undefined) out.push(mdNode("em", mdInline(m[3], citation)));
    else if (m[4] !== undefined) {
      if (/^(https?:|mailto:)/i.test(m[5])) {
        const a = mdNode("a", mdInline(m[4], citation));
        a.href = m[5]; a.target = "_blank"; a.rel = "noopener noreferrer";
        out.push(a);
      } else out.push(document.createTextNode(m[0]));  // javascript:, data: and relative links stay text
    } else if (m[6] !== undefined) out.push((citation && citation(Number(m[6]))) || document.createTextNode(m[0]));
    else out.push(document.createElement("br"));
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  return out;
}
