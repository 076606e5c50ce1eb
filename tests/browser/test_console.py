"""The console in a real Chromium: an auditor's session from sign-in to sign-out (issue 14).

Goal: what a department or an auditor does with the console works in a browser — sign in with a key typed
into the form, open a unit's ranking for a quarter, replay it at a log position before a reversal and see
the earlier order, open a cadre and see the chart and the history (with the reversal linked), open the
eligibility with every check explained, download the ranking as XLSX (read back with openpyxl), open the
audit page (log, verification, a checkpoint saved as JSON), switch to English, sign out — and the key
never travels in a URL (Chrome's network log), never reaches the server's access log, and stays in
`sessionStorage` only until sign-out.

Method: one browser session and one small ledger (tests/browser/conftest.py, orders computed by hand
there); every wait is a WebDriverWait on the DOM (`main[data-route][data-state=ready]` after a new
`data-render`) or on the download directory. One test function: the steps depend on each other, and one
function keeps the whole flow on one xdist worker with one browser. With LEDGER_CONSOLE_SCREENSHOTS=1 the
same run saves each page into docs/console/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser.conftest import DESKTOP, PHONE, Server, screenshot, set_viewport

WAIT_SECONDS = 15
KEY_STORAGE = "ledger-console-key"


class Page:
    """The console in `driver`, waited on through its `data-*` signals."""

    def __init__(self, driver: Any, server: Server) -> None:
        self.driver = driver
        self.server = server

    def wait(self, condition: Any, what: str) -> Any:
        return WebDriverWait(self.driver, WAIT_SECONDS, poll_frequency=0.05).until(condition, what)

    def render(self) -> int:
        value = self.driver.find_element(By.ID, "main").get_attribute("data-render")
        return int(value or 0)

    def ready(self, route: str, after: int) -> None:
        """Wait until a render later than `after` of `route` is ready."""

        def done(driver: Any) -> bool:
            main = driver.find_element(By.ID, "main")
            state = main.get_attribute("data-state")
            assert state != "error", f"the {route} page failed: {main.text[-500:]}"
            return (
                main.get_attribute("data-route") == route
                and state == "ready"
                and int(main.get_attribute("data-render") or 0) > after
            )

        self.wait(done, f"the {route} page to be ready")

    def css(self, selector: str) -> Any:
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[Any]:
        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def fill(self, selector: str, value: str) -> None:
        element = self.css(selector)
        element.clear()
        element.send_keys(value)

    def submit(self, form: str, route: str) -> None:
        before = self.render()
        self.css(f"{form} button[type=submit]").click()
        self.ready(route, before)

    def rows(self) -> list[tuple[str, str]]:
        """(rank, cadre_id) of the ranking's rows, in order."""
        return [
            (row.find_element(By.CSS_SELECTOR, "td").text, row.get_attribute("data-cadre"))
            for row in self.all("#rankings-table tbody tr")
        ]

    def position(self, selector: str = "#rankings-known .known-position") -> int:
        return int(self.css(selector).get_attribute("data-position"))

    def storage(self) -> Any:
        return self.driver.execute_script(f"return window.sessionStorage.getItem('{KEY_STORAGE}')")

    def downloaded(self, directory: Path, suffix: str) -> Path:
        def finished(_driver: Any) -> Path | None:
            done = [path for path in directory.iterdir() if path.suffix == suffix]
            partial = [path for path in directory.iterdir() if path.suffix == ".crdownload"]
            return done[0] if done and not partial else None

        path: Path = self.wait(finished, f"a {suffix} file in {directory}")
        return path


def test_an_auditor_reads_the_console_from_sign_in_to_sign_out(
    browser: tuple[Any, Path], console_server: Server
) -> None:
    driver, downloads = browser
    seed = console_server.seed
    page = Page(driver, console_server)
    base = f"{console_server.base_url}/console"

    # Sign in: a poster key is refused with a reason; the auditor's key, typed and sent with Enter, works.
    driver.get(base)
    page.ready("signin", 0)
    screenshot(driver, "signin")
    page.fill("#signin-key", seed.tokens["poster"])
    page.css("#signin-submit").click()
    page.wait(lambda d: "poster" in d.find_element(By.ID, "signin-message").text, "the poster key refused")
    assert page.storage() is None
    # A key pasted with a zero-width space cannot go in a header: refused as a bad key, in the app's words.
    page.fill("#signin-key", seed.tokens["auditor"] + "\u200b")
    page.css("#signin-submit").click()
    page.wait(lambda d: "密钥无效" in d.find_element(By.ID, "signin-message").text, "the pasted key refused")
    assert "fetch" not in page.css("#signin-message").text
    assert page.storage() is None
    before = page.render()
    page.fill("#signin-key", seed.tokens["auditor"] + Keys.ENTER)
    page.ready("rankings", before)
    assert page.storage() == seed.tokens["auditor"]
    assert page.css("#nav-audit").is_displayed()

    # A unit's ranking for a quarter, chosen in the form: C02, C03, the six at 1.00, C01 ninth; not C13.
    Select(page.css("#f-scope-kind")).select_by_value("unit")
    page.fill("#f-unit", "U1")
    page.fill("#f-period", "2025Q3")
    page.submit("#rankings-form", "rankings")
    rows = page.rows()
    assert [cadre for _, cadre in rows[:2]] == ["C02", "C03"], rows
    assert sorted(cadre for _, cadre in rows[2:8]) == [f"C0{n}" for n in range(4, 10)], rows
    assert {rank for rank, _ in rows[2:8]} == {"3"}, rows
    assert rows[8] == ("9", "C01"), rows
    assert [cadre for _, cadre in rows[9:]] == ["C10", "C11", "C12"] or len(rows) == 12, rows
    assert "C13" not in {cadre for _, cadre in rows}
    assert page.position() == seed.head
    assert page.css("#red-board").is_displayed() and page.css("#recalls").is_displayed()
    assert page.css("#escalations").is_displayed()
    red = [row.text for row in page.all("#red-board tbody tr")]
    assert red and red[0].split()[1] == "C02", red  # the boards rank the quarter's points
    movements = page.all("#rankings-table .move")
    assert movements and all(move.get_attribute("aria-label") for move in movements)
    screenshot(driver, "rankings")

    # The auditor's replay: as known just before the reversal, C01's award still counted — C01 first.
    page.fill("#f-known-at", str(seed.before_reversal))
    page.submit("#rankings-form", "rankings")
    rows = page.rows()
    assert rows[:3] == [("1", "C01"), ("2", "C02"), ("3", "C03")], rows
    assert page.position() == seed.before_reversal
    assert str(seed.before_reversal) in page.css("#rankings-known").text
    assert "known_at" in driver.current_url and seed.tokens["auditor"] not in driver.current_url
    screenshot(driver, "rankings-replay")

    # The same view as XLSX, fetched with the Bearer header and saved from a Blob: C01 first in it too.
    page.css('#ranking button.download[data-format="xlsx"]').click()
    workbook_path = page.downloaded(downloads, ".xlsx")
    workbook = load_workbook(workbook_path, read_only=True)
    try:
        sheet = workbook.active
        assert sheet is not None
        cells = [list(row) for row in sheet.iter_rows(values_only=True)]
    finally:
        workbook.close()  # a read-only workbook holds its file open until closed
    ids = [row[1] for row in cells if len(row) > 1 and isinstance(row[1], str) and row[1].startswith("C")]
    assert ids[:3] == ["C01", "C02", "C03"], cells[:6]
    page.wait(
        lambda d: ".xlsx" in d.find_element(By.CSS_SELECTOR, "#ranking .download-status").text, "status"
    )

    # Readable on a phone: nothing wider than the screen but the tables, which scroll in their own box.
    set_viewport(driver, *PHONE)
    width = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1] + 1, width
    screenshot(driver, "rankings-phone")
    set_viewport(driver, *DESKTOP)

    # A cadre, opened from the ranking with the keyboard; then as known now: the reversal and its target.
    before = page.render()
    page.css('#rankings-table tr[data-cadre="C01"] a.cadre-link').send_keys(Keys.ENTER)
    page.ready("cadre", before)
    assert page.position("#cadre-known .known-position") == seed.before_reversal
    page.fill("#f-known-at", "")
    page.submit("#cadre-form", "cadre")
    assert page.position("#cadre-known .known-position") == seed.head
    assert page.css('#profile dd[data-field="total"]').text == "0.50"
    assert page.css("#history-chart path.line").get_attribute("d")
    assert len(page.all("#history-chart .mark-reversal")) == 1
    assert len(page.all("#history-chart .mark-reversed")) == 1
    types = [row.get_attribute("data-type") for row in page.all("#history-table tbody tr")]
    assert types == ["cadre.registered", "merit.awarded", "merit.awarded", "entry.reversed"], types
    history = page.css("#history-table").text
    for seen in ("review-board", "仙组复〔2025〕2号", "仙组发〔2025〕17号", "merit-office", "0.50"):
        assert seen in history, seen
    reversal = page.css('#history-table tr[data-type="entry.reversed"]')
    reversal.find_element(By.CSS_SELECTOR, "button.link-button").click()
    page.wait(
        lambda d: d.switch_to.active_element.get_attribute("data-type") == "merit.awarded",
        "the reversed entry to take the focus",
    )
    screenshot(driver, "cadre")

    # C02's deduction is marked on its chart.
    before = page.render()
    driver.get(f"{base}#/cadre/C02")
    page.ready("cadre", 0 if page.render() <= before else before)
    page.wait(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#history-chart .mark-deduction"), "the deduction mark"
    )

    # Eligibility: every check with a sentence saying what it asks, and the server's reason.
    before = page.render()
    page.css("#tab-eligibility").click()
    page.ready("eligibility", before)
    checks = page.all("#checks-table tbody tr")
    names = [row.get_attribute("data-check") for row in checks]
    assert {"status", "years_in_grade", "appraisal", "standing"} <= set(names), names
    for row in checks:
        assert row.find_element(By.CSS_SELECTOR, ".sentence").text.strip(), row.text
        assert row.find_element(By.CSS_SELECTOR, ".server-detail").text.strip(), row.text
    assert page.css("#verdict").text
    screenshot(driver, "eligibility")

    # Audit: the head, the log's last page chained, the verification with the read models, a checkpoint.
    before = page.render()
    page.css("#nav-audit").click()
    page.ready("audit", before)
    assert page.position("#audit-head .known-position") == seed.head
    log_rows = page.all("#log-table tbody tr")
    assert int(log_rows[-1].get_attribute("data-position")) == seed.head
    assert "✗" not in page.css("#log-table").text
    assert page.css("#log-previous").get_attribute("disabled") is not None  # the whole log fits one page
    page.fill("#f-log-after", "20")
    page.submit("#log form", "audit")
    assert page.all("#log-table tbody tr")[0].get_attribute("data-position") == "21"
    before = page.render()
    page.css("#log-previous").click()
    page.ready("audit", before)
    assert page.all("#log-table tbody tr")[0].get_attribute("data-position") == "1"
    page.css("#verify-read-models").click()
    page.css("#verify-run").click()
    verdict = page.wait(lambda d: d.find_element(By.ID, "verify-verdict"), "the verification report")
    assert verdict.get_attribute("data-ok") in ("true", "false")
    assert str(seed.head) in page.css("#verify-result").text
    page.css("#checkpoint-run").click()
    page.wait(lambda d: d.find_element(By.ID, "checkpoint-download"), "the checkpoint").click()
    checkpoint = json.loads(page.downloaded(downloads, ".json").read_text())
    assert checkpoint["tree_size"] == seed.head
    screenshot(driver, "audit")

    # Chinese first, English on request (and back).
    before = page.render()
    assert page.css("main h1").text == "审计"
    page.css("#lang").click()
    page.ready("audit", before)
    assert page.css("main h1").text == "Audit"
    assert driver.execute_script("return document.documentElement.lang") == "en"
    before = page.render()
    page.css("#lang").click()
    page.ready("audit", before)

    # Sign out: the key is gone from the tab, and the form is back.
    before = page.render()
    page.css("#sign-out").click()
    page.ready("signin", before)
    assert page.storage() is None
    assert driver.execute_script("return window.sessionStorage.length") == 0
    assert driver.get_cookies() == []

    # A reader's key signs in where the auditor left (#/audit): the page says it needs an auditor's key,
    # and the navigation offers no audit page.
    before = page.render()
    page.fill("#signin-key", seed.tokens["reader"] + Keys.ENTER)
    page.ready("audit", before)
    assert not page.all("#log-table") and page.css("main .alert").text
    assert not page.all("#nav-audit")
    before = page.render()
    page.css("#nav-rankings").click()
    page.ready("rankings", before)
    before = page.render()
    page.css("#sign-out").click()
    page.ready("signin", before)
    assert driver.execute_script("return window.sessionStorage.length") == 0

    # The key was never in a URL the browser requested, nor in the server's log; nothing left the origin.
    secrets = [seed.tokens[who].split("_")[-1] for who in ("auditor", "reader")]
    requested = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.append(message["params"]["request"]["url"])
    assert requested and any("/v1/rankings" in url for url in requested)
    assert not [url for url in requested if any(secret in url for secret in secrets)]
    foreign = [
        url for url in requested if not url.startswith((console_server.base_url + "/", "data:", "blob:"))
    ]
    assert not foreign, (console_server.base_url, foreign[:3], requested[:3])
    server_log = console_server.log_text()
    assert "/v1/exports/rankings" in server_log
    assert not [secret for secret in secrets if secret in server_log]
    problems = [
        entry["message"]
        for entry in driver.get_log("browser")
        if "Content Security Policy" in entry["message"] or entry["level"] == "SEVERE"
    ]
    # The expected errors: the poster key's 403 on /v1/policies at sign-in, and the reader's on the log
    # (the sign-in's probe of the role). Nothing refused by the policy.
    expected = ("/v1/policies - ", "/v1/events?limit=1 - ")
    unexpected = [m for m in problems if not (any(u in m for u in expected) and "status of 403" in m)]
    assert not unexpected, unexpected
