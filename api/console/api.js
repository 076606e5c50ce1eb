// The API as the console calls it: the key from sessionStorage as a Bearer header, never in a URL; JSON
// answers; downloads fetched with the header and saved from a Blob. The console only ever sends GET.

import { lang } from "./i18n.js";

const KEY_STORAGE = "ledger-console-key";
const ROLE_STORAGE = "ledger-console-role";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export const session = {
  key() {
    return window.sessionStorage.getItem(KEY_STORAGE);
  },
  role() {
    return window.sessionStorage.getItem(ROLE_STORAGE) || "reader";
  },
  save(key, role) {
    window.sessionStorage.setItem(KEY_STORAGE, key);
    window.sessionStorage.setItem(ROLE_STORAGE, role);
  },
  clear() {
    window.sessionStorage.removeItem(KEY_STORAGE);
    window.sessionStorage.removeItem(ROLE_STORAGE);
  },
  auditor() {
    const role = this.role();
    return role === "auditor" || role === "admin";
  },
};

// Handlers the shell installs: what to do when the key stops working (401).
let onUnauthenticated = () => {};
export function whenUnauthenticated(handler) {
  onUnauthenticated = handler;
}

export function url(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params ?? {})) {
    if (value !== null && value !== undefined && value !== "") query.set(name, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

async function call(path, params, key) {
  const token = key ?? session.key();
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url(path, params), {
    method: "GET",
    headers,
    credentials: "omit",
    cache: "no-store",
    referrerPolicy: "no-referrer",
  });
  return response;
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return { title: `HTTP ${response.status}` };
  }
}

export async function get(path, params) {
  const response = await call(path, params);
  if (!response.ok) {
    const problem = await problemOf(response);
    if (response.status === 401) onUnauthenticated();
    throw new ApiError(response.status, problem);
  }
  return response.json();
}

// The answer's text as well as its JSON (a checkpoint is saved byte for byte).
export async function getText(path, params) {
  const response = await call(path, params);
  if (!response.ok) {
    const problem = await problemOf(response);
    if (response.status === 401) onUnauthenticated();
    throw new ApiError(response.status, problem);
  }
  return response.text();
}

// Sign-in: the key is good when a reader route answers; the log answering too makes it an auditor's.
// A key is printable ASCII (`cl_…`): anything else (a zero-width space pasted with it) cannot go in a
// header, and fetch would throw its own message; it is a key that is not valid, said as such.
const KEY_SHAPE = /^[\x21-\x7e]+$/;

export async function checkKey(key) {
  if (!KEY_SHAPE.test(key)) return { ok: false, reason: "bad_key" };
  const policies = await call("/v1/policies", null, key);
  if (policies.status === 401) return { ok: false, reason: "bad_key" };
  if (policies.status === 403) return { ok: false, reason: "poster" };
  if (!policies.ok) return { ok: false, reason: "failed", problem: await problemOf(policies) };
  const log = await call("/v1/events", { limit: 1 }, key);
  let role = "reader";
  if (log.ok) role = "auditor";
  return { ok: true, role };
}

function filenameOf(disposition, fallback) {
  if (!disposition) return fallback;
  const extended = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(disposition);
  if (extended) {
    try {
      return decodeURIComponent(extended[1].trim());
    } catch {
      // fall through to the plain name
    }
  }
  const plain = /filename\s*=\s*"?([^";]+)"?/i.exec(disposition);
  return plain ? plain[1].trim() : fallback;
}

export function saveBlob(blob, name) {
  const href = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = href;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(href), 60_000);
}

// A view as a file: `/v1/exports/<route>?format=…&lang=…&<the view's parameters>`.
export async function download(route, params, format) {
  const response = await call(`/v1/exports/${route}`, { ...params, format, lang: lang() });
  if (!response.ok) {
    const problem = await problemOf(response);
    if (response.status === 401) onUnauthenticated();
    throw new ApiError(response.status, problem);
  }
  const blob = await response.blob();
  const name = filenameOf(response.headers.get("content-disposition"), `${route.replaceAll("/", "-")}.${format}`);
  saveBlob(blob, name);
  return name;
}
