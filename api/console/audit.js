// Audit (auditor and admin keys): the head, the chain's verification (and the read models'), a checkpoint
// to keep outside the database, the log page by page, and the replay of any view at a past known_at.

import { get, getText, saveBlob, session } from "./api.js";
import { alertBox, cadreLink, field, h, problemText, short, table, validKnownAt } from "./dom.js";
import { t, typeLabel } from "./i18n.js";

const LIMITS = [20, 50, 100];

function readParams(params) {
  const limit = Number(params.get("limit"));
  const after = params.get("after");
  return {
    limit: LIMITS.includes(limit) ? limit : 50,
    after: after !== null && /^\d{1,18}$/.test(after) ? Number(after) : null,
  };
}

function verifySection() {
  const readModels = h("input", { type: "checkbox", id: "verify-read-models" });
  const output = h("div", { id: "verify-result", "aria-live": "polite" });
  const button = h("button", {
    type: "button", id: "verify-run", onclick: async () => {
      button.disabled = true;
      output.replaceChildren(h("p", null, t("verify_running")));
      try {
        const report = await get("/v1/audit/verify", { read_models: readModels.checked ? "true" : null });
        output.replaceChildren(verifyReport(report));
      } catch (error) {
        output.replaceChildren(alertBox(t("error"), problemText(error.problem) || error.message));
      } finally {
        button.disabled = false;
      }
    },
  }, t("verify_run"));
  return h("section", { id: "verify", "aria-labelledby": "verify-title" },
    h("h2", { id: "verify-title" }, t("verify_title")),
    h("div", { class: "actions" }, button,
      h("label", { class: "check", for: "verify-read-models" }, readModels, ` ${t("verify_read_models")}`)),
    output);
}

function verifyReport(report) {
  const facts = [
    ["verified_through", report.verified_through],
    ["head_hash", short(report.head_hash)],
    ["root_hash", short(report.root_hash)],
    ["first_bad_position", report.first_bad_position ?? "—"],
  ];
  const findings = report.findings ?? [];
  return h("div", null,
    h("p", { class: report.ok ? "verdict pass" : "verdict fail", id: "verify-verdict",
      dataset: { ok: String(report.ok) } },
    report.ok ? `✓ ${t("verify_ok")}` : `✗ ${t("verify_failed")}`,
    report.reason ? ` — ${report.reason}: ${report.detail ?? ""}` : ""),
    h("dl", { class: "profile" }, facts.map(([name, value]) => [h("dt", null, t(name)), h("dd", null, value)])),
    findings.length ? table([
      { key: "table", label: t("finding_table") },
      { key: "row", label: t("finding_row") },
      { key: "reason", label: t("reason") },
      { key: "detail", label: t("detail") },
    ], findings, { caption: t("findings"), id: "findings" }) : null);
}

function checkpointSection() {
  const output = h("div", { id: "checkpoint-result", "aria-live": "polite" });
  const button = h("button", {
    type: "button", id: "checkpoint-run", onclick: async () => {
      button.disabled = true;
      try {
        const text = await getText("/v1/audit/checkpoint");
        const checkpoint = JSON.parse(text);
        const save = h("button", {
          type: "button", class: "secondary", id: "checkpoint-download",
          onclick: () => saveBlob(new Blob([text], { type: "application/json" }),
            `checkpoint-${checkpoint.tree_size}.json`),
        }, t("checkpoint_download"));
        output.replaceChildren(
          h("dl", { class: "profile" }, [
            ["ledger_id", h("code", null, checkpoint.ledger_id)],
            ["tree_size", checkpoint.tree_size],
            ["root_hash", short(checkpoint.root_hash)],
            ["chain_hash", short(checkpoint.chain_hash)],
            ["recorded_at", checkpoint.recorded_at],
            ["signed_by", checkpoint.key_id ?? t("unsigned")],
          ].map(([name, value]) => [h("dt", null, t(name)), h("dd", null, value)])),
          save);
      } catch (error) {
        output.replaceChildren(alertBox(t("error"), problemText(error.problem) || error.message));
      } finally {
        button.disabled = false;
      }
    },
  }, t("checkpoint_run"));
  return h("section", { id: "checkpoint", "aria-labelledby": "checkpoint-title" },
    h("h2", { id: "checkpoint-title" }, t("checkpoint_title")), h("div", { class: "actions" }, button), output);
}

function replaySection(ctx) {
  const view = h("select", null,
    h("option", { value: "rankings" }, t("replay_rankings")), h("option", { value: "cadre" }, t("replay_cadre")));
  const cadre = h("input", { type: "text", autocomplete: "off", spellcheck: "false", placeholder: "C00001" });
  const known = h("input", { type: "text", autocomplete: "off", spellcheck: "false",
    placeholder: "12345 / 2026-01-01T00:00:00+08:00", required: true });
  const error = h("div", { "aria-live": "polite" });
  const cadreField = field("f-replay-cadre", t("cadre_id"), cadre);
  const show = () => {
    cadreField.hidden = view.value !== "cadre";
  };
  view.addEventListener("change", show);
  show();
  const submit = (event) => {
    event.preventDefault();
    const value = known.value.trim();
    if (!value || !validKnownAt(value)) {
      error.replaceChildren(alertBox(t("known_at_invalid")));
      return;
    }
    if (view.value === "cadre") {
      if (!cadre.value.trim()) {
        error.replaceChildren(alertBox(t("no_cadre")));
        return;
      }
      ctx.navigate(`/cadre/${encodeURIComponent(cadre.value.trim())}`, { known_at: value });
    } else {
      ctx.navigate("/rankings", { ...ctx.lastRankings(), known_at: value });
    }
  };
  return h("section", { id: "replay", "aria-labelledby": "replay-title" },
    h("h2", { id: "replay-title" }, t("replay_title")), h("p", null, t("replay_intro")),
    h("form", { class: "filters", onsubmit: submit, novalidate: true },
      h("fieldset", null, h("legend", null, t("replay")),
        field("f-replay-view", t("replay_view"), view), cadreField,
        field("f-replay-known", t("known_at"), known, t("known_at_hint"))),
      h("div", { class: "actions" }, h("button", { type: "submit" }, t("replay_go")))),
    error);
}

function logSection(ctx, page, head, current) {
  const events = page.events;
  const first = events.length ? events[0].position : current.after + 1;
  const last = events.length ? events[events.length - 1].position : current.after;
  const previousHash = new Map();
  events.forEach((item, index) => {
    if (index > 0) previousHash.set(item.position, events[index - 1].hash);
  });
  const columns = [
    { key: "position", label: t("position"), numeric: true, header: true },
    { key: "recorded_at", label: t("recorded_at") },
    { key: "type", label: t("type"), cell: (row) => h("span", { title: row.event.type }, typeLabel(row.event.type)) },
    {
      key: "cadre", label: t("cadre_id"),
      cell: (row) => (row.event.cadre_id ? cadreLink(row.event.cadre_id, { known_at: String(row.position) }) : ""),
    },
    { key: "hash", label: t("hash"), cell: (row) => short(row.hash) },
    { key: "prev_hash", label: t("prev_hash"), cell: (row) => short(row.prev_hash) },
    {
      key: "link", label: t("chain_link"), cell: (row) => {
        const expected = previousHash.get(row.position);
        if (expected === undefined) return "";
        const ok = expected === row.prev_hash;
        return h("span", { class: ok ? "pass" : "fail", title: t(ok ? "chain_ok" : "chain_break") },
          ok ? "✓" : "✗");
      },
    },
    {
      key: "replay", label: t("replay"), cell: (row) => h("a", {
        href: `#/rankings?${new URLSearchParams({ ...ctx.lastRankings(), known_at: String(row.position) })}`,
        "aria-label": `${t("replay_at")} ${row.position}`,
      }, t("replay")),
    },
  ];
  const afterInput = h("input", { type: "number", min: "0", step: "1", value: String(current.after),
    inputmode: "numeric" });
  const limitSelect = h("select", null, LIMITS.map((limit) =>
    h("option", { value: String(limit), selected: limit === current.limit }, String(limit))));
  const go = (after) => ctx.navigate("/audit", { after: String(Math.max(0, after)), limit: limitSelect.value });
  const previous = h("button", {
    type: "button", class: "secondary", id: "log-previous", disabled: current.after <= 0,
    onclick: () => go(current.after - current.limit),
  }, t("log_previous"));
  const next = h("button", {
    type: "button", class: "secondary", id: "log-next", disabled: page.next_after === null,
    onclick: () => go(page.next_after),
  }, t("log_next"));
  return h("section", { id: "log", "aria-labelledby": "log-title" },
    h("h2", { id: "log-title" }, t("log_title")),
    h("form", {
      class: "filters inline", novalidate: true, onsubmit: (event) => {
        event.preventDefault();
        go(Math.min(Number(afterInput.value) || 0, head));
      },
    },
    field("f-log-after", t("log_after"), afterInput),
    field("f-log-limit", t("log_limit"), limitSelect),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("log_go")), previous, next)),
    events.length ? h("p", { class: "known" }, t("log_caption", { first, last })) : null,
    events.length
      ? table(columns, events, {
        caption: t("log_caption", { first, last }), id: "log-table",
        rowAttributes: (row) => ({ dataset: { position: String(row.position) } }),
      })
      : h("p", null, t("log_empty")));
}

export async function auditView(ctx) {
  const heading = h("h1", { tabindex: "-1" }, t("audit_title"));
  ctx.title(t("audit_title"));
  if (!session.auditor()) {
    ctx.main.replaceChildren(heading, alertBox(t("auditor_only")));
    return;
  }
  const current = readParams(ctx.params);
  const headLine = h("p", { class: "known", id: "audit-head" });
  const logHolder = h("div", { id: "log-holder" });
  ctx.main.replaceChildren(heading,
    h("div", { class: "audit-grid" },
      h("section", { id: "head", "aria-labelledby": "head-title" },
        h("h2", { id: "head-title" }, t("head_title")), headLine),
      verifySection(), checkpointSection()),
    logHolder, replaySection(ctx));
  // The head first (one event's page names it), then the page asked for or the last one.
  let head;
  let page;
  if (current.after === null) {
    head = (await get("/v1/events", { limit: 1 })).position;
    current.after = Math.max(0, head - current.limit);
    page = await get("/v1/events", { after: current.after, limit: current.limit });
  } else {
    page = await get("/v1/events", { after: current.after, limit: current.limit });
    head = page.position;
  }
  if (!ctx.active()) return;
  headLine.replaceChildren(h("span", { class: "known-position", dataset: { position: String(head) } },
    t("head_line", { position: head })));
  logHolder.replaceChildren(logSection(ctx, page, head, current));
}
