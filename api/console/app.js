// The console's shell: sign-in, the header (navigation, language, sign-out) and hash routes that never
// carry the key: #/rankings?…, #/cadre/<id>, #/cadre/<id>/eligibility, #/audit?….
//
// Each page sets `data-state` on <main> ("loading", then "ready" or "error") and the performance marks
// `console:<route>:start` and `…:ready` with a measure `console:<route>` between them (the benchmark and
// the browser tests wait on these, not on time).

import { ApiError, checkKey, session, whenUnauthenticated } from "./api.js";
import { auditView } from "./audit.js";
import { cadreView, eligibilityView } from "./cadre.js";
import { alertBox, field, h, problemText } from "./dom.js";
import { lang, setLang, t } from "./i18n.js";
import { readParams, rankingsView } from "./rankings.js";

const main = document.getElementById("main");
const header = document.getElementById("top");
const status = document.getElementById("status");
let renderNumber = 0;
let notice = null;
let lastRankings = { scope: "all" };

const ROUTES = [
  [/^\/rankings$/, "rankings", (ctx) => rankingsView(ctx)],
  [/^\/cadre\/([^/]+)$/, "cadre", (ctx, id) => cadreView(ctx, decodeURIComponent(id))],
  [/^\/cadre\/([^/]+)\/eligibility$/, "eligibility", (ctx, id) => eligibilityView(ctx, decodeURIComponent(id))],
  [/^\/audit$/, "audit", (ctx) => auditView(ctx)],
];

function parseHash() {
  const raw = window.location.hash.startsWith("#/") ? window.location.hash.slice(1) : "/rankings";
  const [path, query] = raw.split("?", 2);
  return { path, params: new URLSearchParams(query ?? "") };
}

function navigate(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params ?? {})) {
    if (value !== null && value !== undefined && value !== "") query.set(name, value);
  }
  const target = `#${path}${query.toString() ? `?${query}` : ""}`;
  if (window.location.hash === target) render(true);
  else window.location.hash = target;
}

function drawHeader(route) {
  const signedIn = Boolean(session.key());
  const link = (name, href) => h("a", {
    href, id: `nav-${name}`, "aria-current": route === name ? "page" : null,
  }, t(`nav_${name}`));
  const rankingsHref = `#/rankings?${new URLSearchParams(lastRankings)}`;
  header.replaceChildren(
    h("a", {
      href: "#main", class: "skip", onclick: (event) => {
        event.preventDefault();
        (main.querySelector("h1") ?? main).focus();
      },
    }, t("skip")),
    h("div", { class: "brand" }, h("strong", null, t("app_title")), " ", h("span", null, t("app_subtitle"))),
    signedIn ? h("nav", { class: "nav", "aria-label": t("nav_label") },
      link("rankings", rankingsHref), session.auditor() ? link("audit", "#/audit") : null) : null,
    h("div", { class: "session" },
      signedIn ? h("span", { class: "who", id: "who" }, `${t("signed_in_as")} · ${t(`role_${session.role()}`)}`) : null,
      h("button", {
        type: "button", class: "secondary", id: "lang", lang: lang() === "zh" ? "en" : "zh",
        "aria-label": t("lang_switch_label"), onclick: () => {
          setLang(lang() === "zh" ? "en" : "zh");
          render(false);
        },
      }, t("lang_switch")),
      signedIn ? h("button", { type: "button", class: "secondary", id: "sign-out", onclick: signOut }, t("sign_out")) : null));
}

function signOut() {
  session.clear();
  notice = t("signed_out");
  renderNumber += 1;
  render(false);
}

function signIn(number) {
  drawHeader(null);
  const input = h("input", {
    type: "password", autocomplete: "off", spellcheck: "false", required: true, autocapitalize: "off",
  });
  const message = h("div", { id: "signin-message", "aria-live": "assertive" },
    notice ? h("p", { class: "notice", role: "status" }, notice) : null);
  notice = null;
  const button = h("button", { type: "submit", id: "signin-submit" }, t("signin_submit"));
  const submit = async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    button.disabled = true;
    message.replaceChildren(h("p", null, t("signin_checking")));
    try {
      const answer = await checkKey(key);
      if (!answer.ok) {
        const words = answer.reason === "poster" ? t("signin_poster")
          : answer.reason === "bad_key" ? t("signin_bad_key") : t("signin_failed") + problemText(answer.problem);
        message.replaceChildren(alertBox(words));
        input.select();
        return;
      }
      input.value = "";
      session.save(key, answer.role);
      render(false);
    } catch (error) {
      message.replaceChildren(alertBox(t("signin_failed") + error.message));
    } finally {
      button.disabled = false;
    }
  };
  // No `name`, no action: the form is handled here and the policy forbids submitting it anywhere.
  main.replaceChildren(
    h("h1", { tabindex: "-1" }, t("signin_title")),
    h("form", { id: "signin", class: "signin", onsubmit: submit, novalidate: true, autocomplete: "off" },
      h("p", null, t("signin_intro")),
      field("signin-key", t("signin_key"), input),
      h("div", { class: "actions" }, button)),
    message);
  document.title = `${t("signin_title")} · ${t("app_title")}`;
  main.dataset.route = "signin";
  main.dataset.state = "ready";
  performance.mark(`console:signin:ready:${number}`);
  input.focus();
}

async function render(moveFocus) {
  renderNumber += 1;
  const number = renderNumber;
  document.documentElement.lang = lang() === "zh" ? "zh-CN" : "en";
  main.dataset.state = "loading";
  main.dataset.render = String(number);
  if (!session.key()) {
    signIn(number);
    return;
  }
  const { path, params } = parseHash();
  const found = ROUTES.map(([pattern, name, view]) => [pattern.exec(path), name, view]).find(([match]) => match);
  const [match, name, view] = found ?? [[], "rankings", (ctx) => rankingsView(ctx)];
  if (name === "rankings") {
    const current = readParams(params);
    lastRankings = Object.fromEntries(Object.entries({
      scope: current.scope, period: current.period, basis: current.basis,
    }).filter(([, value]) => value));
  }
  drawHeader(name);
  main.dataset.route = name;
  const start = `console:${name}:start:${number}`;
  performance.mark(start);
  status.textContent = t("loading");
  const ctx = {
    main, params, navigate,
    active: () => number === renderNumber,
    title: (text) => {
      document.title = `${text} · ${t("app_title")}`;
    },
    lastRankings: () => ({ ...lastRankings }),
  };
  try {
    await view(ctx, ...match.slice(1));
    if (number !== renderNumber) return;
    main.dataset.state = "ready";
    performance.mark(`console:${name}:ready:${number}`);
    performance.measure(`console:${name}`, start);
    status.textContent = "";
  } catch (error) {
    if (number !== renderNumber) return;
    if (error instanceof ApiError && error.status === 401) return; // the sign-in form took over
    const detail = error instanceof ApiError ? problemText(error.problem) : error.message;
    main.append(alertBox(t("error"), detail));
    main.dataset.state = "error";
    status.textContent = "";
  }
  if (moveFocus && number === renderNumber) (main.querySelector("h1") ?? main).focus({ preventScroll: false });
}

whenUnauthenticated(() => {
  session.clear();
  notice = t("session_expired");
  renderNumber += 1;
  render(false);
});

window.addEventListener("hashchange", () => {
  if (window.location.hash.startsWith("#/") || window.location.hash === "") render(true);
});

render(false);
