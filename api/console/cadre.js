// A cadre: the profile as of a date, the history with running totals and its chart, and eligibility with
// every check explained — all at one log position, which the page names.

import { get } from "./api.js";
import { runningTotalChart } from "./chart.js";
import { alertBox, field, h, knownLine, short, table, validKnownAt } from "./dom.js";
import { checkLabel, checkSentence, gradeLabel, t, typeLabel } from "./i18n.js";
import { downloads } from "./rankings.js";

const HISTORY_PAGE = 1000;
const COMPONENTS = ["tenure", "merit", "deductions", "appraisal", "evaluation", "recall"];

function replayForm(ctx, cadreId, current, tab, extra) {
  const cadreInput = h("input", { type: "text", value: cadreId, autocomplete: "off", spellcheck: "false",
    required: true });
  const asOfInput = h("input", { type: "date", value: current.as_of });
  const knownInput = h("input", {
    type: "text", value: current.known_at, autocomplete: "off", spellcheck: "false",
    placeholder: "12345 / 2026-01-01T00:00:00+08:00",
  });
  const scopeInput = extra ? h("input", {
    type: "text", value: current.scope ?? "", autocomplete: "off", spellcheck: "false", placeholder: "unit:U001",
  }) : null;
  const submit = (event) => {
    event.preventDefault();
    const id = cadreInput.value.trim();
    if (!id) return;
    ctx.navigate(`/cadre/${encodeURIComponent(id)}${tab === "eligibility" ? "/eligibility" : ""}`, {
      as_of: asOfInput.value, known_at: knownInput.value.trim(), scope: scopeInput ? scopeInput.value.trim() : "",
    });
  };
  return h("form", { class: "filters", id: "cadre-form", onsubmit: submit, novalidate: true },
    h("fieldset", null, h("legend", null, t("cadre_open")),
      field("f-cadre", t("cadre_id"), cadreInput),
      scopeInput ? field("f-standing-scope", t("standing_scope"), scopeInput, t("standing_scope_hint")) : null),
    h("fieldset", { class: "replay" }, h("legend", null, t("replay")),
      field("f-as-of", t("as_of"), asOfInput),
      field("f-known-at", t("known_at"), knownInput, t("known_at_hint"))),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("query"))));
}

function tabs(cadreId, current, active) {
  const query = new URLSearchParams();
  if (current.as_of) query.set("as_of", current.as_of);
  if (current.known_at) query.set("known_at", current.known_at);
  const suffix = query.toString() ? `?${query}` : "";
  const base = `#/cadre/${encodeURIComponent(cadreId)}`;
  const tab = (name, href) => h("a", {
    href, class: name === active ? "tab active" : "tab", "aria-current": name === active ? "page" : null,
    id: `tab-${name}`,
  }, t(`tab_${name}`));
  return h("nav", { class: "tabs", "aria-label": t("cadre_title") },
    tab("history", base + suffix), tab("eligibility", `${base}/eligibility${suffix}`));
}

function readParams(params) {
  return {
    as_of: params.get("as_of") || "",
    known_at: params.get("known_at") || "",
    scope: params.get("scope") || "",
  };
}

function profileSection(cadre) {
  const yesNo = (value) => (value ? t("yes") : t("no"));
  const rows = [
    ["unit_id", cadre.unit_id],
    ["grade", gradeLabel(cadre.grade)],
    ["status", cadre.status === "active" ? t("status_active") : t("status_departed")],
    ["leadership", yesNo(cadre.leadership)],
    ["principal", yesNo(cadre.principal)],
    ["left_leadership", yesNo(cadre.left_leadership)],
    ["registered_on", cadre.registered_on],
    ["departed_on", cadre.departed_on ?? "—"],
    ["total", cadre.total],
  ];
  return h("section", { id: "profile", "aria-labelledby": "profile-title" },
    h("h2", { id: "profile-title" }, t("profile")),
    h("dl", { class: "profile" }, rows.map(([name, value]) => [
      h("dt", null, t(name)), h("dd", { dataset: { field: name } }, value)])),
    h("h3", null, t("components")),
    h("dl", { class: "profile components" }, COMPONENTS.map((name) => [
      h("dt", null, t(name)), h("dd", { dataset: { field: name } }, cadre.components[name])])));
}

function scrollToEntry(main, eventId) {
  const row = main.querySelector(`tr[data-event-id="${CSS.escape(eventId)}"]`);
  if (!row) return;
  row.scrollIntoView({ block: "center" });
  row.classList.add("flash");
  row.focus();
  window.setTimeout(() => row.classList.remove("flash"), 1500);
}

function historyTable(main, entries, cadreId) {
  const positions = new Map(entries.map((entry) => [entry.event_id, entry.position]));
  const jump = (eventId, words) => {
    const position = positions.get(eventId);
    return h("button", {
      type: "button", class: "link-button",
      "aria-label": `${words} — ${t("go_to_entry", { position: position ?? "?" })}`,
      onclick: () => scrollToEntry(main, eventId),
    }, `${words} #${position ?? eventId.slice(0, 8)}`);
  };
  const columns = [
    { key: "position", label: t("position"), numeric: true },
    { key: "effective_on", label: t("effective_on") },
    { key: "type", label: t("type"), cell: (row) => h("span", { title: row.type }, typeLabel(row.type)) },
    { key: "points", label: t("points"), numeric: true },
    { key: "counted_points", label: t("counted"), numeric: true },
    { key: "running_total", label: t("running_total"), numeric: true },
    { key: "adjustment", label: t("adjustment"), cell: (row) => row.adjustment ?? "" },
    {
      key: "link", label: t("link"), cell: (row) => [
        row.reverses ? jump(row.reverses, t("reverses")) : null,
        row.reversed_by ? jump(row.reversed_by, t("reversed_by")) : null,
      ],
    },
    { key: "posted_by", label: t("posted_by") },
    { key: "document", label: t("document"), cell: (row) => row.document ?? "" },
    { key: "source", label: t("source"), cell: (row) => `${row.source.system}/${row.source.key}` },
    { key: "hash", label: t("hash"), cell: (row) => short(row.hash) },
  ];
  return table(columns, entries, {
    caption: t("history_caption", { cadre: cadreId }), id: "history-table",
    rowAttributes: (row) => ({
      tabindex: "-1",
      class: [row.reversed_by ? "reversed" : "", row.type === "entry.reversed" ? "reversal" : "",
        row.type === "deduction.applied" ? "deduction" : ""].join(" ").trim() || null,
      dataset: { eventId: row.event_id, position: String(row.position), type: row.type },
    }),
  });
}

async function profileFirst(cadreId, current) {
  return get(`/v1/cadres/${encodeURIComponent(cadreId)}`, { as_of: current.as_of, known_at: current.known_at });
}

function heading(cadre, cadreId) {
  return h("h1", { tabindex: "-1", id: "cadre-heading" },
    cadre ? `${cadre.name}（${cadre.cadre_id}）` : `${t("cadre_title")} ${cadreId}`);
}

export async function cadreView(ctx, cadreId) {
  const current = readParams(ctx.params);
  const known = h("p", { class: "known", id: "cadre-known" });
  const body = h("div", { id: "cadre-body" });
  ctx.main.replaceChildren(heading(null, cadreId), tabs(cadreId, current, "history"),
    replayForm(ctx, cadreId, current, "history"), known, body);
  ctx.title(`${t("cadre_title")} ${cadreId}`);
  if (!validKnownAt(current.known_at)) {
    body.replaceChildren(alertBox(t("known_at_invalid")));
    return;
  }
  // The profile and the history at once; read again at the profile's position should they differ.
  const historyAt = (knownAt) => get(`/v1/cadres/${encodeURIComponent(cadreId)}/history`, {
    as_of: current.as_of, known_at: knownAt, limit: HISTORY_PAGE,
  });
  const pending = historyAt(current.known_at || null);
  pending.catch(() => {});
  const cadre = await profileFirst(cadreId, current);
  if (!ctx.active()) return;
  const pinned = String(cadre.position);
  const query = { as_of: cadre.as_of, known_at: pinned };
  let history = await pending;
  if (history.position !== cadre.position) history = await historyAt(pinned);
  const entries = [...history.entries];
  let cursor = history.next_cursor;
  while (cursor && ctx.active()) {
    const page = await get(`/v1/cadres/${encodeURIComponent(cadreId)}/history`, { cursor, limit: HISTORY_PAGE });
    entries.push(...page.entries);
    cursor = page.next_cursor;
  }
  if (!ctx.active()) return;
  const whole = { ...history, entries };
  ctx.main.querySelector("#cadre-heading").replaceWith(heading(cadre, cadreId));
  ctx.title(`${cadre.name} ${cadreId}`);
  known.replaceChildren(knownLine(cadre, current.known_at), " · ", t("as_of_line", { as_of: cadre.as_of }));
  body.replaceChildren(
    profileSection(cadre),
    h("section", { id: "chart", "aria-labelledby": "chart-title" },
      h("h2", { id: "chart-title" }, t("chart_title")), runningTotalChart(whole, cadreId)),
    h("section", { id: "history", "aria-labelledby": "history-title" },
      h("div", { class: "section-head" }, h("h2", { id: "history-title" }, t("history_title")),
        downloads(`cadres/${encodeURIComponent(cadreId)}/history`, query, t("history_title"))),
      historyTable(ctx.main, entries, cadreId)));
}

export async function eligibilityView(ctx, cadreId) {
  const current = readParams(ctx.params);
  const known = h("p", { class: "known", id: "cadre-known" });
  const body = h("div", { id: "cadre-body" });
  ctx.main.replaceChildren(heading(null, cadreId), tabs(cadreId, current, "eligibility"),
    replayForm(ctx, cadreId, current, "eligibility", true), known, body);
  ctx.title(`${t("eligibility_title")} ${cadreId}`);
  if (!validKnownAt(current.known_at)) {
    body.replaceChildren(alertBox(t("known_at_invalid")));
    return;
  }
  const verdictAt = (knownAt) => get(`/v1/cadres/${encodeURIComponent(cadreId)}/eligibility`, {
    as_of: current.as_of, known_at: knownAt, scope: current.scope,
  });
  const pending = verdictAt(current.known_at || null);
  pending.catch(() => {});
  const cadre = await profileFirst(cadreId, current);
  if (!ctx.active()) return;
  const pinned = String(cadre.position);
  const query = { as_of: cadre.as_of, known_at: pinned, scope: current.scope };
  let verdict = await pending;
  if (verdict.position !== cadre.position) verdict = await verdictAt(pinned);
  if (!ctx.active()) return;
  ctx.main.querySelector("#cadre-heading").replaceWith(heading(cadre, cadreId));
  ctx.title(`${t("eligibility_title")} ${cadre.name}`);
  known.replaceChildren(knownLine(verdict, current.known_at), " · ", t("as_of_line", { as_of: verdict.as_of }));
  const columns = [
    { key: "check", label: t("check"), header: true, cell: (row) => checkLabel(row.check) },
    {
      key: "passed", label: t("passed"), cell: (row) => h("span", {
        class: row.passed ? "pass" : "fail",
      }, row.passed ? `✓ ${t("check_passed")}` : `✗ ${t("check_failed")}`),
    },
    {
      key: "detail", label: t("detail"), cell: (row) => [
        h("span", { class: "sentence" }, checkSentence(row.check)), " ",
        h("span", { class: "server-detail" }, row.detail),
      ],
    },
  ];
  body.replaceChildren(
    h("section", { id: "eligibility", "aria-labelledby": "eligibility-title" },
      h("div", { class: "section-head" }, h("h2", { id: "eligibility-title" }, t("eligibility_title")),
        downloads(`cadres/${encodeURIComponent(cadreId)}/eligibility`, query, t("eligibility_title"))),
      h("p", { class: verdict.eligible ? "verdict pass" : "verdict fail", id: "verdict" },
        verdict.eligible ? `✓ ${t("eligible")}` : `✗ ${t("not_eligible")}`),
      table(columns, verdict.checks, {
        caption: t("eligibility_title"), id: "checks-table",
        rowAttributes: (row) => ({ dataset: { check: row.check, passed: String(row.passed) } }),
      })));
}
