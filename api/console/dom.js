// Building the page: elements from data (never HTML strings from the API), tables, small formatters.

import { t } from "./i18n.js";

// h("a", {href: "#/x", class: "c"}, "text", child…): attributes; `on*` functions become listeners;
// `dataset`, a dict of data-* attributes; null or false attributes and children are left out.
export function h(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      for (const [key, data] of Object.entries(value)) element.dataset[key] = data;
    } else if (name === "class") {
      element.className = value;
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG = "http://www.w3.org/2000/svg";

export function s(tag, attributes, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value !== null && value !== undefined) element.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

// A table: columns [{key, label, cell(row) -> node|text, numeric}], a caption, rows.
export function table(columns, rows, { caption, id, rowAttributes, className } = {}) {
  const head = h("thead", null, h("tr", null, columns.map((column) =>
    h("th", { scope: "col", class: column.numeric ? "num" : null }, column.label))));
  const body = h("tbody", null, rows.map((row) => h("tr", rowAttributes ? rowAttributes(row) : null,
    columns.map((column, index) => {
      const value = column.cell ? column.cell(row) : row[column.key];
      const cell = index === 0 && column.header ? "th" : "td";
      return h(cell, { class: column.numeric ? "num" : null, scope: cell === "th" ? "row" : null },
        value ?? "—");
    }))));
  return h("div", { class: `table-wrap ${className ?? ""}`, tabindex: "0", role: "region",
    "aria-label": caption ?? null },
  h("table", { id }, caption ? h("caption", null, caption) : null, head, body));
}

// Movement: ▲ n (up), ▼ n (down), ＝, 新 — with words for screen readers.
export function movement(value) {
  if (value === null || value === undefined) {
    return h("span", { class: "move new", title: t("new_entry"), "aria-label": t("new_entry") }, t("new_short"));
  }
  if (value > 0) {
    const words = t("moved_up", { n: value });
    return h("span", { class: "move up", title: words, "aria-label": words }, `▲${value}`);
  }
  if (value < 0) {
    const words = t("moved_down", { n: -value });
    return h("span", { class: "move down", title: words, "aria-label": words }, `▼${-value}`);
  }
  return h("span", { class: "move same", title: t("unchanged"), "aria-label": t("unchanged") }, "＝");
}

export function short(hash) {
  if (!hash) return "—";
  return h("code", { title: hash, class: "hash" }, `${hash.slice(0, 10)}…`);
}

export function cadreLink(cadreId, extra) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(extra ?? {})) if (value) query.set(name, value);
  const suffix = query.toString() ? `?${query}` : "";
  return h("a", { href: `#/cadre/${encodeURIComponent(cadreId)}${suffix}`, class: "cadre-link" }, cadreId);
}

export function alertBox(message, detail) {
  return h("div", { class: "alert", role: "alert" }, h("strong", null, message), detail ? ` ${detail}` : null);
}

export function problemText(problem) {
  if (!problem) return "";
  const parts = [problem.title, problem.detail].filter(Boolean);
  if (problem.field) parts.push(`(${problem.field})`);
  return parts.join(" — ");
}

export function field(id, labelText, control, hint) {
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) control.setAttribute("aria-describedby", hintId);
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, labelText), control,
    hint ? h("small", { id: hintId, class: "hint" }, hint) : null);
}

// A known_at is a position (digits) or an RFC 3339 instant with an offset; empty means now.
export function validKnownAt(value) {
  if (!value) return true;
  if (/^\d{1,18}$/.test(value)) return true;
  return /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i.test(value);
}

export function knownLine(view, requested) {
  const instant = requested && !/^\d+$/.test(requested);
  const text = instant
    ? t("known_at_instant", { instant: requested, position: view.position })
    : t("known_at_position", { position: view.position });
  return h("span", { class: "known-position", dataset: { position: String(view.position) } }, text);
}
