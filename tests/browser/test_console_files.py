"""The console's files over plain HTTP (no browser): one origin, a strict policy, read-only, in the package.

Goal: everything the console loads comes from the app (no CDN, no font or script of another origin), so it
works offline and a key typed into it can go nowhere else; every answer under `/console` carries the
Content-Security-Policy that forbids inline scripts, other origins, form submissions and framing; the
console's scripts only ever send GET; the files ship in the wheel.

Method: fetch the shell and every file of the package's `console/` directory from a real `ledger serve`
(the session's server of tests/browser/conftest.py), parse the HTML for `src`/`href`, scan the scripts and
the style sheet for URLs, imports and request methods.
"""

from __future__ import annotations

import re
import tomllib
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path

import httpx
import pytest

from ledger.api.console import CONSOLE_CONTENT_SECURITY_POLICY
from tests.browser.conftest import Server

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = files("ledger.api") / "console"
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Anything that names another origin: a scheme with an authority, or a protocol-relative URL.
ORIGIN = re.compile(r"""(?:[a-z][a-z0-9+.-]*:)?//[a-z0-9.-]+""", re.IGNORECASE)
# The one absolute URL the scripts may hold: SVG's namespace, a name and never fetched.
NAMESPACES = {"http://www.w3.org/2000/svg"}
IMPORT = re.compile(r"""(?:import|export)\s[^;]*?from\s+["']([^"']+)["']""")
METHOD = re.compile(r"""method\s*:\s*["']([A-Za-z]+)["']""")


class Shell(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self.styles = 0
        self.style_attributes = 0
        self.handlers = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name in ("src", "href"):
            if attributes.get(name):
                self.urls.append(str(attributes[name]))
        if tag == "script":
            self._in_script = not attributes.get("src")
        if tag == "style":
            self.styles += 1
        if "style" in attributes:
            self.style_attributes += 1
        self.handlers += sum(1 for name in attributes if name.startswith("on"))

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def _files() -> list[str]:
    return sorted(entry.name for entry in CONSOLE.iterdir() if entry.is_file())


def test_the_policy_is_what_the_docs_say() -> None:
    assert CONSOLE_CONTENT_SECURITY_POLICY == POLICY


def test_every_console_answer_carries_the_policy(console_server: Server) -> None:
    with httpx.Client(base_url=console_server.base_url) as client:
        for path in ["/console", "/console/", *(f"/console/{name}" for name in _files())]:
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert answer.headers["content-security-policy"] == POLICY, path
            assert answer.headers["x-content-type-options"] == "nosniff", path
            assert answer.headers["referrer-policy"] == "no-referrer", path
            assert "set-cookie" not in answer.headers, path
            suffix = Path(path).suffix or ".html"
            assert answer.headers["content-type"].startswith(CONTENT_TYPES[suffix]), path
        # A revalidation keeps the policy too, and a file that is not there is a plain 404.
        etag = client.get("/console/app.js").headers["etag"]
        again = client.get("/console/app.js", headers={"If-None-Match": etag})
        assert again.status_code in (200, 304)
        assert client.get("/console/nothing.js").status_code == 404
        assert client.get("/console/../pyproject.toml").status_code == 404


def test_the_shell_loads_only_its_own_files(console_server: Server) -> None:
    page = httpx.get(f"{console_server.base_url}/console").text
    shell = Shell()
    shell.feed(page)
    assert shell.inline_scripts == 0 and shell.styles == 0 and shell.style_attributes == 0
    assert shell.handlers == 0
    assert shell.urls
    for url in shell.urls:
        assert url == "data:," or url.startswith("/console/"), url
        if url.startswith("/console/"):
            assert url.removeprefix("/console/") in _files(), url
    assert 'http-equiv="Content-Security-Policy"' in page


@pytest.mark.parametrize("name", [name for name in _files() if name.endswith((".js", ".css", ".html"))])
def test_no_file_names_another_origin(name: str) -> None:
    text = (CONSOLE / name).read_text(encoding="utf-8")
    foreign = [match for match in ORIGIN.findall(text) if match not in {"http://www.w3.org"}]
    assert not foreign, (name, foreign)
    assert all(namespace in text for namespace in NAMESPACES) or "http://" not in text
    if name.endswith(".css"):
        assert "@import" not in text and "url(" not in text, name
    if name.endswith(".js"):
        for target in IMPORT.findall(text):
            assert target.startswith("./") and target.removeprefix("./") in _files(), (name, target)
        assert {method.upper() for method in METHOD.findall(text)} <= {"GET"}, name
        assert "POST" not in text and "XMLHttpRequest" not in text and "eval(" not in text, name
        assert "innerHTML" not in text and "document.cookie" not in text, name
        assert "localStorage.setItem(KEY" not in text, name  # the key lives in sessionStorage only


def test_the_files_ship_in_the_package() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "console/*" in data["ledger.api"]
    assert {"index.html", "app.js", "style.css"} <= set(_files())


@pytest.mark.parametrize("name", ["app.js%00.js", "%00.css", "app.js%00"])
def test_a_file_name_with_a_nul_is_not_found_not_a_500(console_server: Server, name: str) -> None:
    response = httpx.get(f"{console_server.base_url}/console/{name}")
    assert response.status_code == 404, response.text
