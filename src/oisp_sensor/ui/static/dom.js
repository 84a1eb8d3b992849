// DOM helpers. Events carry untrusted text captured from the wire, so nothing here ever
// assigns HTML: text goes through textContent and attributes through setAttribute/properties.

/**
 * Create an element. `props`: class (string), text (textContent), title, data-* / aria-* and
 * other attributes, `on*` handlers (functions), `style` (object). Children: nodes or strings
 * (strings become text nodes), null/false skipped, arrays flattened.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = String(value);
      else if (key === "style") Object.assign(el.style, value);
      else if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2).toLowerCase(), value);
      } else if (key === "value") el.value = value;
      else if (key === "checked") el.checked = Boolean(value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Set textContent only when it changes (avoids layout work on unchanged live cells). */
export function setText(el, text) {
  const value = text === null || text === undefined ? "" : String(text);
  if (el.textContent !== value) el.textContent = value;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

/** A collapsible JSON tree (text only), for values whose shape the page does not know. */
export function jsonTree(value, depth = 0, openDepth = 2) {
  if (value === null || typeof value !== "object") {
    return h("span", { class: `jv jv-${value === null ? "null" : typeof value}`, text: jsonScalar(value) });
  }
  const isArray = Array.isArray(value);
  const entries = isArray ? value.map((v, i) => [i, v]) : Object.entries(value);
  if (entries.length === 0) return h("span", { class: "jv", text: isArray ? "[]" : "{}" });
  const details = h("details", { class: "jt", open: depth < openDepth });
  details.appendChild(
    h("summary", { class: "jt-sum", text: isArray ? `[${entries.length}]` : `{${entries.length}}` }),
  );
  const list = h("div", { class: "jt-body" });
  for (const [key, child] of entries) {
    list.appendChild(
      h("div", { class: "jt-row" }, h("span", { class: "jk", text: `${key}: ` }), jsonTree(child, depth + 1, openDepth)),
    );
  }
  details.appendChild(list);
  return details;
}

function jsonScalar(value) {
  if (typeof value === "string") return JSON.stringify(value);
  return String(value);
}

/** A definition list of [label, value-or-node] pairs, skipping empty values. */
export function kv(pairs, cls = "kv") {
  const dl = h("dl", { class: cls });
  for (const [label, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    dl.appendChild(h("dt", { text: label }));
    dl.appendChild(value instanceof Node ? h("dd", null, value) : h("dd", { text: String(value) }));
  }
  return dl;
}

/** An empty-state message. */
export function empty(text) {
  return h("div", { class: "empty", text });
}

/** Copy text to the clipboard (best effort: not available on plain http from other hosts). */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}
