// The running total of a cadre over time, drawn as SVG: a step line by effective date, reversals (✕),
// deductions (▼) and reversed entries (○) marked, each mark with a title. No library: a few hundred points.

import { h, s } from "./dom.js";
import { t, typeLabel } from "./i18n.js";

const WIDTH = 820;
const HEIGHT = 260;
const PAD = { left: 56, right: 16, top: 16, bottom: 34 };
const DAY = 86_400_000;

function niceStep(span, count) {
  const raw = span / Math.max(count, 1);
  const magnitude = 10 ** Math.floor(Math.log10(raw || 1));
  for (const factor of [1, 2, 2.5, 5, 10]) {
    if (raw <= factor * magnitude) return factor * magnitude;
  }
  return 10 * magnitude;
}

function time(day) {
  return Date.parse(`${day}T00:00:00Z`);
}

export function runningTotalChart(history, cadreId) {
  const entries = history.entries;
  const points = entries.map((entry) => ({
    x: time(entry.effective_on), y: Number(entry.running_total), entry,
  }));
  const reversals = points.filter((point) => point.entry.type === "entry.reversed");
  const deductions = points.filter((point) => point.entry.type === "deduction.applied");
  const reversed = points.filter((point) => point.entry.reversed_by);
  const label = t("chart_label", {
    cadre: cadreId, count: entries.length, total: history.total,
    reversals: reversals.length, deductions: deductions.length,
  });
  const svg = s("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": label, class: "chart", id: "history-chart",
    preserveAspectRatio: "xMidYMid meet",
  }, s("title", null, label));
  if (!points.length) return h("figure", { class: "chart-figure" }, svg);
  let [x0, x1] = [Math.min(...points.map((p) => p.x)), Math.max(...points.map((p) => p.x))];
  if (x1 - x0 < 30 * DAY) {
    x0 -= 15 * DAY;
    x1 += 15 * DAY;
  }
  let [y0, y1] = [Math.min(0, ...points.map((p) => p.y)), Math.max(0, ...points.map((p) => p.y))];
  if (y1 - y0 < 1) y1 = y0 + 1;
  const yStep = niceStep(y1 - y0, 5);
  y0 = Math.floor(y0 / yStep) * yStep;
  y1 = Math.ceil(y1 / yStep) * yStep;
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const X = (x) => PAD.left + ((x - x0) / (x1 - x0)) * plotWidth;
  const Y = (y) => PAD.top + (1 - (y - y0) / (y1 - y0)) * plotHeight;
  const grid = s("g", { class: "grid" });
  for (let value = y0; value <= y1 + yStep / 2; value += yStep) {
    const y = Y(value).toFixed(1);
    grid.append(s("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y }));
    grid.append(s("text", { x: PAD.left - 6, y: Number(y) + 4, "text-anchor": "end" },
      Number(value.toFixed(2)).toString()));
  }
  const first = new Date(x0);
  for (let year = first.getUTCFullYear(); year <= new Date(x1).getUTCFullYear(); year += 1) {
    for (const month of [0, 6]) {
      const at = Date.UTC(year, month, 1);
      if (at < x0 || at > x1) continue;
      const x = X(at).toFixed(1);
      grid.append(s("line", { x1: x, x2: x, y1: PAD.top, y2: HEIGHT - PAD.bottom, class: "vertical" }));
      grid.append(s("text", { x, y: HEIGHT - PAD.bottom + 16, "text-anchor": "middle" },
        month === 0 ? String(year) : `${year}-07`));
    }
  }
  // A step line: the total holds until the next entry's date.
  let path = `M${X(points[0].x).toFixed(1)},${Y(0).toFixed(1)}`;
  for (const point of points) {
    path += ` H${X(point.x).toFixed(1)} V${Y(point.y).toFixed(1)}`;
  }
  path += ` H${(WIDTH - PAD.right).toFixed(1)}`;
  const marks = s("g", { class: "marks" });
  const titled = (element, point) => {
    element.append(s("title", null,
      `${point.entry.effective_on} ${typeLabel(point.entry.type)} ${point.entry.counted_points} → ${point.entry.running_total} (#${point.entry.position})`));
    return element;
  };
  for (const point of reversed) {
    marks.append(titled(s("circle", {
      cx: X(point.x).toFixed(1), cy: Y(point.y).toFixed(1), r: 5, class: "mark-reversed",
    }), point));
  }
  for (const point of deductions) {
    const [x, y] = [X(point.x), Y(point.y)];
    marks.append(titled(s("path", {
      d: `M${(x - 6).toFixed(1)},${(y - 5).toFixed(1)} h12 l-6,10 z`, class: "mark-deduction",
    }), point));
  }
  for (const point of reversals) {
    const [x, y] = [X(point.x), Y(point.y)];
    marks.append(titled(s("path", {
      d: `M${x - 5},${y - 5} l10,10 M${x + 5},${y - 5} l-10,10`, class: "mark-reversal",
    }), point));
  }
  svg.append(grid,
    s("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: Y(0), y2: Y(0), class: "zero" }),
    s("path", { d: path, class: "line" }), marks);
  const legend = h("ul", { class: "legend" },
    h("li", { class: "legend-line" }, t("legend_total")),
    h("li", { class: "legend-reversal" }, `✕ ${t("legend_reversal")} (${reversals.length})`),
    h("li", { class: "legend-deduction" }, `▼ ${t("legend_deduction")} (${deductions.length})`),
    h("li", { class: "legend-reversed" }, `○ ${t("legend_reversed")} (${reversed.length})`));
  return h("figure", { class: "chart-figure" }, svg, h("figcaption", null, t("chart_title")), legend);
}
