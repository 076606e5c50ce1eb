"""Fixtures of the console's browser tests: one small seeded ledger behind `ledger serve`, and Chromium.

The ledger (one a session) is unit U1 of twelve cadres and U2 of one, with points in 2025Q2 and 2025Q3 that
make the orders easy to compute by hand, and one reversal that changes U1's order (`Seed` says which, and
the position just before it). The server is the `ledger` console script on a free port of 127.0.0.1,
logging at INFO (its access log is read by the tests), ready once /health/ready answers 200.

The browser is Debian's `chromium` driven through its `chromedriver` (`LEDGER_CHROMIUM`,
`LEDGER_CHROMEDRIVER` override the paths): headless, never downloading anything of its own (Selenium
Manager offline). Without them the tests skip, saying why — unless `LEDGER_REQUIRE_BROWSER=1` (CI), which
makes a missing browser a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from ledger import Ledger
from ledger.access import KeyStore, Role
from ledger.domain.events import CadreRegistered, DeductionApplied, EntryReversed, MeritAwarded, Source

CHROMIUM: Final = os.environ.get("LEDGER_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER: Final = os.environ.get("LEDGER_CHROMEDRIVER", "/usr/bin/chromedriver")
REQUIRE_BROWSER: Final = os.environ.get("LEDGER_REQUIRE_BROWSER") == "1"
SCREENSHOTS: Final = os.environ.get("LEDGER_CONSOLE_SCREENSHOTS") == "1"
SCREENSHOT_DIR: Final = Path(__file__).resolve().parents[2] / "docs" / "console"
READY_DEADLINE_SECONDS: Final = 60.0
POLL_SECONDS: Final = 0.05  # the interval of a poll with a deadline, never a synchronization
DESKTOP: Final = (1280, 800)
PHONE: Final = (390, 844)

# Unit U1: C01–C03 carry the story; C04–C09 have a unit citation (0.50) in each quarter; C10–C12 nothing.
U1_OTHERS: Final = tuple(f"C{n:02d}" for n in range(4, 13))
NAMES: Final = {
    "C01": "赵一",
    "C02": "钱二",
    "C03": "孙三",
    "C04": "李四",
    "C05": "周五",
    "C06": "吴六",
    "C07": "郑七",
    "C08": "王八",
    "C09": "冯九",
    "C10": "陈十",
    "C11": "褚十一",
    "C12": "卫十二",
    "C13": "蒋十三",
}


@dataclass
class Seed:
    """What the tests know about the seeded ledger."""

    before_reversal: int  # the log's head just before the reversal of C01's award
    reversal: int  # the reversal's position
    head: int  # after the keys
    tokens: dict[str, str] = field(default_factory=dict)


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    seed: Seed
    directory: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def browser_missing() -> str | None:
    """Why no browser test can run here, or None."""
    for what, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)):
        if not (Path(path).is_file() and os.access(path, os.X_OK)) and shutil.which(path) is None:
            return f"no {what} at {path} (apt-get install chromium chromium-driver, or `make browser`)"
    return None


def need_browser() -> None:
    """Skip (locally) or fail (LEDGER_REQUIRE_BROWSER=1) when Chromium or its driver is missing."""
    reason = browser_missing()
    if reason is None:
        return
    if REQUIRE_BROWSER:
        pytest.fail(f"LEDGER_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(f"browser tests need Chromium: {reason}")


def _registration(cadre_id: str, unit_id: str) -> CadreRegistered:
    return CadreRegistered(
        cadre_id=cadre_id,
        effective_on=date(2024, 1, 1),
        source=Source(system="hr", key=f"reg-{cadre_id}"),
        name=NAMES[cadre_id],
        unit_id=unit_id,
        grade="一级科员",
        leadership=False,
        principal=False,
        service_started_on=date(2010, 3, 1),
        grade_since=date(2020, 1, 1),
    )


def _merit(
    cadre_id: str, key: str, award: str, level: str, on: date, document: str | None = None
) -> MeritAwarded:
    return MeritAwarded(
        cadre_id=cadre_id,
        effective_on=on,
        source=Source(system="merit", key=key),
        award=award,  # type: ignore[arg-type]
        level=level,  # type: ignore[arg-type]
        document=document,
    )


def seed_ledger(url: str) -> Seed:
    """The ledger of the tests (see the module doc); returns the positions the tests replay at.

    Totals of U1 as of 2025-09-30 (basis total), by hand from the illustrative policy (citation unit 0.50,
    citation municipal 2.00, third class municipal 4.00, first class municipal 10.00, criticism −1.00):
    before the reversal C01 10.50, C02 5.50, C03 2.50, C04–C09 1.00, C10–C12 0.00; after it C01 0.50, so
    C02 is first, C03 second, C04–C09 share third and C01 is ninth.
    """
    with Ledger.open(url) as ledger:
        ledger.post(
            [_registration(cadre_id, "U1") for cadre_id in ("C01", "C02", "C03", *U1_OTHERS)]
            + [_registration("C13", "U2")],
            posted_by="hr-clerk",
        )
        quarter_two = [
            _merit(cadre_id, f"q2-{cadre_id}", "citation", "unit", date(2025, 5, 6))
            for cadre_id in ("C01", "C02", "C03", *U1_OTHERS[:6])
        ]
        ledger.post(quarter_two, posted_by="merit-office")
        quarter_three: list[Any] = [
            _merit("C01", "q3-C01", "merit_first_class", "municipal", date(2025, 8, 1), "仙组发〔2025〕17号"),
            _merit(
                "C02", "q3-C02a", "merit_third_class", "municipal", date(2025, 8, 2), "仙组发〔2025〕18号"
            ),
            _merit("C02", "q3-C02b", "citation", "municipal", date(2025, 8, 3)),
            _merit("C03", "q3-C03", "citation", "municipal", date(2025, 8, 4)),
            _merit("C13", "q3-C13", "merit_first_class", "municipal", date(2025, 8, 5)),
            *(
                _merit(cadre_id, f"q3-{cadre_id}", "citation", "unit", date(2025, 8, 6))
                for cadre_id in U1_OTHERS[:6]
            ),
        ]
        posted = ledger.post(quarter_three, posted_by="merit-office")
        ledger.post(
            [
                DeductionApplied(
                    cadre_id="C02",
                    effective_on=date(2025, 8, 20),
                    source=Source(system="discipline", key="d-C02"),
                    kind="criticism",
                    level="county",
                    document="仙纪发〔2025〕3号",
                )
            ],
            posted_by="discipline-office",
        )
        before = ledger.head()
        reversed_ = ledger.post(
            [
                EntryReversed(
                    cadre_id="C01",
                    effective_on=date(2025, 9, 10),
                    source=Source(system="merit", key="rev-q3-C01"),
                    target_event_id=posted.results[0].event_id,
                    reason="复核撤销",
                    document="仙组复〔2025〕2号",
                )
            ],
            posted_by="review-board",
        )
    tokens = {}
    with KeyStore.open(url) as keys:
        tokens["auditor"] = keys.create("console-auditor", Role.auditor).token
        tokens["reader"] = keys.create("console-reader", Role.reader).token
        tokens["poster"] = keys.create(
            "console-poster", Role.poster, system="hr", event_types=["merit.awarded"]
        ).token
    with Ledger.open(url) as ledger:
        head = ledger.head()
    return Seed(before_reversal=before, reversal=reversed_.position, head=head, tokens=tokens)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _ledger_script() -> list[str]:
    script = Path(sys.executable).parent / "ledger"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ledger.cli"]


@pytest.fixture(scope="session")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("console")
    url = f"sqlite:///{directory / 'ledger.db'}"
    seed = seed_ledger(url)
    port = _free_port()
    log_path = directory / "server.log"
    environment = {name: value for name, value in os.environ.items() if not name.startswith("LEDGER_")}
    command = [*_ledger_script(), "serve", "--host", "127.0.0.1", "--port", str(port), "--database", url]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--log-level", "info"], stdout=log, stderr=subprocess.STDOUT, env=environment
        )
    base_url = f"http://127.0.0.1:{port}"
    server = Server(base_url, process, log_path, seed, directory)
    try:
        deadline = time.monotonic() + READY_DEADLINE_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"`ledger serve` exited with {process.returncode}: {server.log_text()[-2000:]}")
            try:
                if httpx.get(f"{base_url}/health/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"`ledger serve` was not ready in {READY_DEADLINE_SECONDS:.0f} s")
            time.sleep(POLL_SECONDS)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def make_driver(download_dir: Path) -> Any:
    """Headless Chromium through chromedriver, downloads into `download_dir`, the network logged."""
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never download a driver or a browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.add_argument("--headless=new")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        options.add_argument("--no-sandbox")
    options.add_argument("--disable-dev-shm-usage")
    options.add_argument("--disable-gpu")
    options.add_argument("--no-first-run")
    options.add_argument("--disable-extensions")
    options.add_argument("--disable-background-networking")
    options.add_argument("--disable-component-update")
    options.add_argument("--lang=zh-CN")
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(download_dir),
            "download.prompt_for_download": False,
            "download.directory_upgrade": True,
            "safebrowsing.enabled": False,
        },
    )
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)}
    )
    set_viewport(driver, *DESKTOP)
    return driver


def set_viewport(driver: Any, width: int, height: int) -> None:
    """Make the page's viewport (not the window) `width` × `height` CSS pixels."""
    driver.set_window_size(width, height)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(width + (width - inner[0]), height + (height - inner[1]))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    """One Chromium session for the module, and its download directory."""
    need_browser()
    download_dir = tmp_path_factory.mktemp("downloads")
    driver = make_driver(download_dir)
    try:
        yield driver, download_dir
    finally:
        driver.quit()


def screenshot(driver: Any, name: str) -> None:
    """docs/console/<name>.png when LEDGER_CONSOLE_SCREENSHOTS=1."""
    if not SCREENSHOTS:
        return
    import base64

    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    # The whole page at the window's width, not only what the window shows.
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    width = driver.execute_script("return window.innerWidth")
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": min(size["height"], 4000), "scale": 1},
        },
    )
    (SCREENSHOT_DIR / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))
