// Rankings: a scope's ranking for a period or a date, with the red and black boards, the 回炉 list and
// the escalations of the period — every read at one log position, which the page names.

import { download, get } from "./api.js";
import {
  alertBox, cadreLink, field, h, knownLine, movement, problemText, table, validKnownAt,
} from "./dom.js";
import { GRADES, basisLabel, gradeLabel, scopeLabel, t } from "./i18n.js";

const PAGE = 100;
const COMPONENTS = ["tenure", "merit", "deductions", "appraisal", "evaluation", "recall"];
const units = new Map(); // unit id -> name (when known), for the unit picker's suggestions

export function lastQuarter(today = new Date()) {
  const year = today.getFullYear();
  const quarter = Math.floor(today.getMonth() / 3); // the quarter before the current one, 0 = Q4 of last year
  return quarter === 0 ? `${year - 1}Q4` : `${year}Q${quarter}`;
}

function recentPeriods(today = new Date()) {
  const periods = [];
  let year = today.getFullYear();
  let quarter = Math.floor(today.getMonth() / 3) + 1;
  for (let index = 0; index < 8; index += 1) {
    periods.push(`${year}Q${quarter}`);
    quarter -= 1;
    if (quarter === 0) {
      quarter = 4;
      year -= 1;
    }
  }
  periods.push(String(today.getFullYear()), String(today.getFullYear() - 1));
  return periods;
}

export function readParams(params) {
  // A fresh visit shows the last quarter; a submitted form says its period (none: by the as-of date).
  const period = params.get("period") ?? ([...params.keys()].length ? "" : lastQuarter());
  return {
    scope: params.get("scope") || "all",
    period,
    as_of: period ? "" : (params.get("as_of") || ""),
    basis: params.get("basis") === "period" ? "period" : "total",
    known_at: params.get("known_at") || "",
  };
}

function noteUnits(entries) {
  for (const entry of entries ?? []) {
    if (entry.unit_id && !units.has(entry.unit_id)) units.set(entry.unit_id, "");
  }
}

function fillUnitList(list) {
  const options = [...units.entries()].sort(([a], [b]) => a.localeCompare(b))
    .map(([id, name]) => h("option", { value: id }, name ? `${id} ${name}` : id));
  list.replaceChildren(...options);
}

async function loadUnitNames(list, period) {
  // The units rated by enterprises carry names; the others appear as their ids from the rankings read.
  try {
    const answer = await get("/v1/units/rankings", { period: period || lastQuarter() });
    for (const entry of answer.entries) units.set(entry.unit_id, entry.name);
  } catch {
    // No ratings for the period: ids only.
  }
  fillUnitList(list);
}

function form(current, ctx) {
  const [kind, value] = current.scope.includes(":")
    ? [current.scope.slice(0, current.scope.indexOf(":")), current.scope.slice(current.scope.indexOf(":") + 1)]
    : ["all", ""];
  const kindSelect = h("select", null, ["all", "unit", "grade", "cohort"].map((name) =>
    h("option", { value: name, selected: name === kind }, t(`scope_${name}`))));
  const unitList = h("datalist", { id: "unit-list" });
  fillUnitList(unitList);
  const unitInput = h("input", {
    type: "text", list: "unit-list", value: kind === "unit" ? value : "", autocomplete: "off",
    spellcheck: "false", placeholder: "U001", pattern: "[^\\s]+",
  });
  const gradeSelect = h("select", null, GRADES.map(([title]) =>
    h("option", { value: title, selected: kind === "grade" && value === title }, gradeLabel(title))));
  const cohortSelect = h("select", null, ["principal", "left_leadership"].map((name) =>
    h("option", { value: name, selected: kind === "cohort" && value === name }, t(`cohort_${name}`))));
  const periodList = h("datalist", { id: "period-list" },
    recentPeriods().map((period) => h("option", { value: period })));
  const periodInput = h("input", {
    type: "text", list: "period-list", value: current.period, autocomplete: "off", spellcheck: "false",
    placeholder: "2025Q3",
  });
  const asOfInput = h("input", { type: "date", value: current.as_of });
  const basisSelect = h("select", null, ["total", "period"].map((name) =>
    h("option", { value: name, selected: current.basis === name }, basisLabel(name))));
  const knownInput = h("input", {
    type: "text", value: current.known_at, autocomplete: "off", spellcheck: "false",
    placeholder: "12345 / 2026-01-01T00:00:00+08:00", inputmode: "text",
  });
  const unitField = field("f-unit", t("unit_id_field"), unitInput);
  const gradeField = field("f-grade", t("scope_grade"), gradeSelect);
  const cohortField = field("f-cohort", t("scope_cohort"), cohortSelect);
  const show = () => {
    unitField.hidden = kindSelect.value !== "unit";
    gradeField.hidden = kindSelect.value !== "grade";
    cohortField.hidden = kindSelect.value !== "cohort";
    asOfInput.disabled = periodInput.value.trim() !== "";
  };
  kindSelect.addEventListener("change", show);
  periodInput.addEventListener("input", show);
  unitInput.addEventListener("focus", () => {
    if (![...units.values()].some(Boolean)) loadUnitNames(unitList, periodInput.value.trim());
  }, { once: true });
  show();
  const submit = (event) => {
    event.preventDefault();
    const chosen = kindSelect.value;
    let scope = "all";
    if (chosen === "unit" && unitInput.value.trim()) scope = `unit:${unitInput.value.trim()}`;
    if (chosen === "grade") scope = `grade:${gradeSelect.value}`;
    if (chosen === "cohort") scope = `cohort:${cohortSelect.value}`;
    const period = periodInput.value.trim();
    ctx.navigate("/rankings", {
      scope, period, as_of: period ? "" : asOfInput.value, basis: basisSelect.value,
      known_at: knownInput.value.trim(),
    });
  };
  const nowButton = h("button", {
    type: "button", class: "secondary", onclick: () => {
      knownInput.value = "";
      knownInput.form.requestSubmit();
    },
  }, t("reset_now"));
  return h("form", { class: "filters", id: "rankings-form", onsubmit: submit, novalidate: true },
    h("fieldset", null, h("legend", null, t("scope")),
      field("f-scope-kind", t("scope_kind"), kindSelect), unitField, gradeField, cohortField, unitList),
    h("fieldset", null, h("legend", null, t("period")),
      field("f-period", t("period"), periodInput, t("period_hint")), periodList,
      field("f-as-of", t("as_of"), asOfInput, t("as_of_hint")),
      field("f-basis", t("basis"), basisSelect)),
    h("fieldset", { class: "replay" }, h("legend", null, t("replay")),
      field("f-known-at", t("known_at"), knownInput, t("known_at_hint"))),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("query")), nowButton));
}

function downloads(route, params, name) {
  const status = h("span", { class: "download-status", role: "status" });
  const button = (format) => h("button", {
    type: "button", class: "secondary download", dataset: { format, route },
    "aria-label": `${t(format === "xlsx" ? "download_xlsx" : "download_csv")}: ${name}`,
    onclick: async () => {
      status.textContent = t("downloading");
      try {
        status.textContent = t("downloaded") + await download(route, params, format);
      } catch (error) {
        status.textContent = `${t("error")}: ${problemText(error.problem) || error.message}`;
      }
    },
  }, format.toUpperCase());
  return h("div", { class: "downloads" }, h("span", { class: "download-label" }, t("download")),
    button("xlsx"), button("csv"), status);
}

function rankingColumns(known) {
  const link = (row) => cadreLink(row.cadre_id, { known_at: known });
  return [
    { key: "rank", label: t("rank"), numeric: true },
    { key: "movement", label: t("movement"), cell: (row) => movement(row.movement) },
    { key: "cadre_id", label: t("cadre_id"), cell: link },
    { key: "name", label: t("name") },
    { key: "unit_id", label: t("unit_id") },
    { key: "grade", label: t("grade"), cell: (row) => gradeLabel(row.grade) },
    { key: "total", label: t("total"), numeric: true },
    ...COMPONENTS.map((name) => ({
      key: name, label: t(name), numeric: true, cell: (row) => row.components[name],
    })),
  ];
}

function boardList(title, entries, known, tone) {
  const columns = [
    { key: "rank", label: t("rank"), numeric: true },
    { key: "cadre_id", label: t("cadre_id"), cell: (row) => cadreLink(row.cadre_id, { known_at: known }) },
    { key: "name", label: t("name") },
    { key: "unit_id", label: t("unit_id") },
    { key: "total", label: t("total"), numeric: true },
  ];
  return h("section", { class: `board ${tone}`, "aria-labelledby": `board-${tone}` },
    h("h3", { id: `board-${tone}` }, title),
    entries.length ? table(columns, entries, { caption: title, id: `${tone}-board` }) : h("p", null, t("none")));
}

export async function rankingsView(ctx) {
  const current = readParams(ctx.params);
  const heading = h("h1", { tabindex: "-1" }, t("rankings_title"));
  const known = h("p", { class: "known", id: "rankings-known" });
  const rankingSection = h("section", { id: "ranking", "aria-labelledby": "ranking-title" });
  const periodSections = h("div", { id: "period-views" });
  ctx.main.replaceChildren(heading, form(current, ctx), known, rankingSection, periodSections);
  ctx.title(t("rankings_title"));
  if (!validKnownAt(current.known_at)) {
    rankingSection.replaceChildren(alertBox(t("known_at_invalid")));
    return;
  }
  const query = {
    scope: current.scope, basis: current.basis, known_at: current.known_at,
    period: current.period || null, as_of: current.period ? null : current.as_of || null,
  };
  // Recalls and escalations rank each unit on its own by default; a chosen scope is one pool.
  const poolScope = current.scope === "all" ? null : current.scope;
  const periodViewsAt = (knownAt) => Promise.all([
    get("/v1/boards", { period: current.period, known_at: knownAt, scope: current.scope }),
    get("/v1/recalls", { period: current.period, known_at: knownAt, scope: poolScope }),
    get("/v1/escalations", { period: current.period, known_at: knownAt, scope: poolScope }),
  ]);
  // All four at once, at the known_at asked for (or now); should a post land between them, the period's
  // views are read again at the ranking's position, so that the page shows one position.
  let periodViews = current.period ? periodViewsAt(current.known_at || null) : null;
  periodViews?.catch(() => {}); // awaited below; a failure there is reported there
  const first = await get("/v1/rankings", { ...query, limit: PAGE });
  if (!ctx.active()) return;
  // Every later read (more pages, downloads) at the position this answer reflects.
  const pinned = String(first.position);
  if (periodViews && !current.known_at) {
    const views = periodViews;
    periodViews = views.then((answers) => (answers.every((answer) => answer.position === first.position)
      ? answers : periodViewsAt(pinned)));
    periodViews.catch(() => {});
  }
  noteUnits(first.entries);
  known.replaceChildren(
    knownLine(first, current.known_at), " · ", t("as_of_line", { as_of: first.as_of }),
    first.previous_as_of ? ` · ${t("previous_line", { previous: first.previous_as_of })}` : "",
    ` · ${t("basis_line", { basis: basisLabel(first.basis) })}`,
    first.since ? ` · ${t("since_line", { since: first.since })}` : "",
  );
  const caption = t("rankings_caption", { scope: scopeLabel(first.scope) });
  const columns = rankingColumns(pinned);
  const rows = [...first.entries];
  const tableHolder = h("div");
  const count = h("p", { class: "count" });
  const moreButton = h("button", { type: "button", class: "secondary", id: "more" }, t("more"));
  let cursor = first.next_cursor;
  const draw = () => {
    tableHolder.replaceChildren(rows.length
      ? table(columns, rows, { caption, id: "rankings-table", rowAttributes: (row) => ({ dataset: { cadre: row.cadre_id } }) })
      : h("p", null, t("rankings_empty")));
    count.textContent = t("entries_shown", { shown: rows.length });
    moreButton.hidden = !cursor;
  };
  moreButton.addEventListener("click", async () => {
    moreButton.disabled = true;
    try {
      const page = await get("/v1/rankings", { cursor, limit: PAGE });
      rows.push(...page.entries);
      cursor = page.next_cursor;
      draw();
    } finally {
      moreButton.disabled = false;
    }
  });
  draw();
  const pinnedQuery = { ...query, known_at: pinned };
  rankingSection.replaceChildren(
    h("div", { class: "section-head" }, h("h2", { id: "ranking-title" }, caption),
      downloads("rankings", pinnedQuery, caption)),
    tableHolder, count, moreButton);
  if (!periodViews) {
    periodSections.replaceChildren(h("p", { class: "note" }, t("need_period")));
    return;
  }
  const [boards, recalls, escalations] = await periodViews;
  if (!ctx.active()) return;
  noteUnits(boards.red);
  noteUnits(boards.black);
  noteUnits(recalls.candidates);
  periodSections.replaceChildren(
    boardsSection(boards, pinned), recallsSection(recalls, pinned), escalationsSection(escalations, pinned));
  fillUnitList(ctx.main.querySelector("#unit-list"));
}

function viewLine(view) {
  return h("p", { class: "known" }, `${view.period} · ${scopeLabel(view.scope)} · `,
    t("as_of_line", { as_of: view.as_of }), ` · ${t("basis_line", { basis: basisLabel(view.basis) })} · `,
    t("known_at_position", { position: view.position }));
}

function boardsSection(boards, pinned) {
  const params = { period: boards.period, scope: boards.scope, known_at: pinned };
  return h("section", { id: "boards", "aria-labelledby": "boards-title" },
    h("div", { class: "section-head" }, h("h2", { id: "boards-title" }, t("boards_title")),
      downloads("boards", params, t("boards_title"))),
    viewLine(boards),
    h("div", { class: "boards" },
      boardList(t("red_board"), boards.red, pinned, "red"),
      boardList(t("black_board"), boards.black, pinned, "black")));
}

function recallsSection(recalls, pinned) {
  const params = { period: recalls.period, scope: recalls.scope, known_at: pinned };
  const link = (row) => cadreLink(row.cadre_id, { known_at: pinned });
  const candidates = [
    { key: "cadre_id", label: t("cadre_id"), cell: link },
    { key: "name", label: t("name") },
    { key: "unit_id", label: t("unit_id") },
    { key: "rank", label: t("rank"), numeric: true },
    { key: "pool_size", label: t("pool_size"), numeric: true },
    { key: "total", label: t("total"), numeric: true },
  ];
  const open = [
    { key: "cadre_id", label: t("cadre_id"), cell: link },
    { key: "period", label: t("period") },
    { key: "ordered_on", label: t("ordered_on") },
    { key: "reason", label: t("reason") },
  ];
  return h("section", { id: "recalls", "aria-labelledby": "recalls-title" },
    h("div", { class: "section-head" }, h("h2", { id: "recalls-title" }, t("recalls_title")),
      downloads("recalls", params, t("recalls_title"))),
    viewLine(recalls),
    h("h3", null, t("recall_candidates")),
    recalls.candidates.length
      ? table(candidates, recalls.candidates, { caption: t("recall_candidates"), id: "recall-candidates" })
      : h("p", null, t("none")),
    h("h3", null, t("open_recalls")),
    recalls.open_recalls.length
      ? table(open, recalls.open_recalls, { caption: t("open_recalls"), id: "open-recalls" })
      : h("p", null, t("none")));
}

function escalationsSection(escalations, pinned) {
  const params = { period: escalations.period, scope: escalations.scope, known_at: pinned };
  const columns = [
    { key: "cadre_id", label: t("cadre_id"), cell: (row) => cadreLink(row.cadre_id, { known_at: pinned }) },
    { key: "name", label: t("name") },
    { key: "unit_id", label: t("unit_id") },
    { key: "streak", label: t("streak"), numeric: true },
    { key: "step", label: t("step"), numeric: true },
    { key: "action", label: t("action"), cell: (row) => h("code", null, row.action) },
    { key: "label", label: t("label") },
  ];
  return h("section", { id: "escalations", "aria-labelledby": "escalations-title" },
    h("div", { class: "section-head" }, h("h2", { id: "escalations-title" }, t("escalations_title")),
      downloads("escalations", params, t("escalations_title"))),
    viewLine(escalations),
    escalations.escalations.length
      ? table(columns, escalations.escalations, { caption: t("escalations_title"), id: "escalations-table" })
      : h("p", null, t("none")));
}

export { downloads };
