"""B16 — the web console's pages ready in a real browser, on the city (issue 14: each page ≤ 300 ms).

What is measured, on a copy of the cached city (a million events, about 4,000 cadres in some eighty units),
served by `ledger serve --workers 1` and read by headless Chromium (Debian's `chromium` through its
`chromedriver`, the browser tests' setup) on the same 2-core machine:

- **page ready**: from the start of navigation (the browser's `performance.timeOrigin`) to the console's
  own `console:<page>:ready` mark — the HTML, the modules and the style sheet fetched and run, the key read
  from `sessionStorage`, every API read of the page answered and drawn (the rankings page: the ranking,
  then its boards, 回炉 list and escalations at the ranking's position); p50 and max of 7 full loads;
- the baseline in the same run, **in-app**: the same page re-entered by a hash change (no reload: what a
  click costs), the console's `console:<page>` measure; p50 of 10;
- for the two rankings pages also **cold**: in-app, each at a log position no read used before
  (`known_at` = the head less a different amount each time), what a read right after a post costs.

Pages: a unit's ranking for a quarter, the whole city's, a cadre (profile, history, chart), its
eligibility, and the audit page (the head and the log's last page). The server's timing is inside the
figures (loopback HTTP, one keep-alive connection per request the browser makes).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Final

from benchmarks.server import ServerUnavailable, command_used, create_key, peak_rss_of, serving
from benchmarks.workload import Result, city, log, median, scratch_dir, working_copy

CHROMIUM: Final = os.environ.get("LEDGER_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER: Final = os.environ.get("LEDGER_CHROMEDRIVER", "/usr/bin/chromedriver")
TARGET_MS: Final = 300.0
FULL_LOADS: Final = 7
NAVIGATIONS: Final = 10
COLD_STEP: Final = 7
WAIT_SECONDS: Final = 60
PERIOD: Final = "2026Q2"  # the city's last quarter (its today is 2026-06-30)
CADRE: Final = "C00017"
PAGES: Final = (
    ("rankings of a unit", "rankings", f"#/rankings?scope=unit:U003&period={PERIOD}&basis=total"),
    ("rankings of the city", "rankings", f"#/rankings?scope=all&period={PERIOD}&basis=total"),
    ("a cadre (profile, history, chart)", "cadre", f"#/cadre/{CADRE}"),
    ("a cadre's eligibility", "eligibility", f"#/cadre/{CADRE}/eligibility"),
    ("audit (head, the log's last page)", "audit", "#/audit"),
)


def _missing() -> str | None:
    for what, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)):
        if not Path(path).exists() and shutil.which(path) is None:
            return f"no {what} at {path} (`make browser` installs Debian's chromium and chromium-driver)"
    return None


def _driver() -> Any:
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager never downloads anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--window-size=1280,800",
    ):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def _wait_ready(driver: Any, route: str, after: int) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(current: Any) -> bool:
        state = current.execute_script(
            "const m = document.getElementById('main');"
            "return m ? [m.dataset.route, m.dataset.state, Number(m.dataset.render || 0)] : null"
        )
        if state and state[1] == "error":
            raise ServerUnavailable(
                f"the {route} page failed: {current.find_element('id', 'main').text[-300:]}"
            )
        return bool(state) and state[0] == route and state[1] == "ready" and state[2] > after

    WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.01).until(ready, f"the {route} page")


def _render(driver: Any) -> int:
    value = driver.execute_script("return Number(document.getElementById('main')?.dataset.render || 0)")
    return int(value)


def _ready_mark(driver: Any, route: str) -> float:
    """Milliseconds from the navigation's start to the page's last ready mark."""
    value = driver.execute_script(
        "const marks = performance.getEntriesByType('mark')"
        f".filter((m) => m.name.startsWith('console:{route}:ready:'));"
        "return marks.length ? marks[marks.length - 1].startTime : null"
    )
    if value is None:
        raise ServerUnavailable(f"no ready mark of {route}")
    return float(value)


def _measure(driver: Any, route: str) -> float:
    value = driver.execute_script(
        f"const all = performance.getEntriesByName('console:{route}', 'measure');"
        "return all.length ? all[all.length - 1].duration : null"
    )
    if value is None:
        raise ServerUnavailable(f"no measure of {route}")
    return float(value)


def _full_load(driver: Any, base: str, route: str, fragment: str) -> float:
    driver.get("about:blank")
    driver.get(base + fragment)
    _wait_ready(driver, route, 0)
    return _ready_mark(driver, route)


def _navigate(driver: Any, route: str, fragment: str) -> float:
    before = _render(driver)
    driver.execute_script("window.location.hash = arguments[0]", fragment)
    _wait_ready(driver, route, before)
    return _measure(driver, route)


def _sign_in(driver: Any, base: str, token: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(base)
    _wait_ready(driver, "signin", 0)
    before = _render(driver)
    driver.find_element(By.ID, "signin-key").send_keys(token + Keys.ENTER)
    _wait_ready(driver, "rankings", before)


def _pages(driver: Any, base: str, head: int) -> list[dict[str, Any]]:
    figures = []
    for number, (what, route, fragment) in enumerate(PAGES):
        log(f"B16: {what}")
        _full_load(driver, base, route, fragment)  # warm-up: the server's first read of the view
        full = [_full_load(driver, base, route, fragment) for _ in range(FULL_LOADS)]
        glue = "&" if "?" in fragment else "?"
        navigations = [_navigate(driver, route, f"{fragment}{glue}n={index}") for index in range(NAVIGATIONS)]
        row: dict[str, Any] = {
            "page": what,
            "route": route,
            "fragment": fragment,
            "full_load_p50_ms": median(full),
            "full_load_max_ms": max(full),
            "full_loads_ms": full,
            "in_app_p50_ms": median(navigations),
            "in_app_max_ms": max(navigations),
        }
        if route == "rankings":
            cold = [
                _navigate(
                    driver, route, f"{fragment}&known_at={head - 1_000 - number * 500 - index * COLD_STEP}"
                )
                for index in range(NAVIGATIONS)
            ]
            row["cold_in_app_p50_ms"] = median(cold)
            row["cold_in_app_max_ms"] = max(cold)
        figures.append(row)
        log(
            f"B16: {what}: full load p50 {row['full_load_p50_ms']:.0f} ms, in-app p50 "
            f"{row['in_app_p50_ms']:.0f} ms"
            + (f", cold {row['cold_in_app_p50_ms']:.0f} ms" if "cold_in_app_p50_ms" in row else "")
        )
    return figures


def _not_run(reason: str) -> Result:
    return Result(
        id="B16",
        what="the console's pages ready in Chromium, on the city",
        target=f"≤ {TARGET_MS:.0f} ms",
        status="not run",
        reason=reason,
    )


def run() -> list[Result]:
    missing = _missing()
    if missing is not None:
        return [_not_run(missing)]
    source, about = city("1m")
    head = int(about["events"])
    with scratch_dir("b16") as scratch:
        path = working_copy(source, scratch / "ledger.db")
        token = create_key(path, "bench-console", "auditor")
        try:
            with serving(path, scratch) as server:
                driver = _driver()
                try:
                    base = f"http://127.0.0.1:{server.port}/console"
                    _sign_in(driver, base, token)
                    figures = _pages(driver, base, head)
                    browser = driver.capabilities.get("browserVersion", "?")
                finally:
                    driver.quit()
                server_peak, _ = peak_rss_of(server.pid)
        except ServerUnavailable as error:
            return [_not_run(str(error))]
    results = []
    for row in figures:
        baselines = [("in-app (a hash change, no reload), p50", row["in_app_p50_ms"])]
        if "cold_in_app_p50_ms" in row:
            baselines.append(("in-app at a fresh log position (cold), p50", row["cold_in_app_p50_ms"]))
        results.append(
            Result(
                id="B16",
                what=f"console: {row['page']}, page ready from navigation start (full load)",
                target=f"≤ {TARGET_MS:.0f} ms",
                measured=row["full_load_p50_ms"],
                unit="ms p50",
                higher_is_better=False,
                baselines=baselines,
                met=row["full_load_p50_ms"] <= TARGET_MS,
                peak_rss_mb=server_peak,
                details={**row, "events": head, "chromium": browser, "command": command_used()},
            )
        )
    return results
