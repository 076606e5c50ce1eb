"""The API reference at `/schema` renders with the network off: everything it loads comes from the app.

Method: fetch the page from the app alone (the in-process client reaches nothing else), collect every
`src` and `href` of the page and every `url(…)` of its style sheets, and require each to be a path on the
app's own origin (or a `data:` URL inside the CSS), served by the app with 200 and the right content type.
The vendored files must be the bytes their README names (SHA-256) and must ship in the package.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest

from ledger.api.openapi import DOCS_CONTENT_SECURITY_POLICY
from tests.api.conftest import Api

ROOT = Path(__file__).resolve().parents[2]
STATIC = files("ledger.api") / "static"
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
# A CSS `url(…)`, quoted or not.
CSS_URL = re.compile(r"""url\(\s*(['"]?)(.*?)\1\s*\)""", re.DOTALL)
# A row of the README's table of files: | swagger-ui/NAME | `SHA-256` |
README_ROW = re.compile(r"^\| (swagger-ui/\S+) \| `([0-9a-f]{64})` \|$", re.MULTILINE)


class References(HTMLParser):
    """Every `src` and `href` of a page, and its `<meta http-equiv>` policy."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.policy: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.urls.extend(value for name, value in attrs if name in {"src", "href"} and value is not None)
        if tag == "meta" and (values.get("http-equiv") or "").lower() == "content-security-policy":
            self.policy = values.get("content")


def page(api: Api) -> References:
    response = api.client.get("/schema")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    parser = References()
    parser.feed(response.text)
    return parser


def assert_same_origin(url: str) -> None:
    parts = urlsplit(url)
    assert not parts.scheme and not parts.netloc, f"{url} names another origin"
    assert url.startswith("/"), url


def test_every_file_the_page_references_is_served_by_the_app_itself(shared_api: Api) -> None:
    urls = page(shared_api).urls
    suffixes = {Path(urlsplit(url).path).suffix for url in urls}
    assert {".js", ".css", ".png"} <= suffixes, urls  # the UI's script, its style sheet, a favicon
    for url in urls:
        assert_same_origin(url)
        response = shared_api.client.get(url)
        assert response.status_code == 200, url
        expected = CONTENT_TYPES[Path(urlsplit(url).path).suffix]
        assert response.headers["content-type"].split(";")[0] == expected, url
        if expected == "text/css":
            for _, inner in CSS_URL.findall(response.text):
                if not inner.startswith("data:"):
                    assert_same_origin(inner)
            assert "@import" not in response.text
            assert "@font-face" not in response.text  # no web fonts, from anywhere


def test_the_page_starts_the_ui_on_the_apps_own_document(shared_api: Api) -> None:
    response = shared_api.client.get("/schema")
    assert 'data-openapi-url="/schema/openapi.json"' in response.text
    # No inline script: the policy allows scripts from the app's files only.
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", response.text) is None
    script = shared_api.client.get("/schema/assets/docs.js").text
    # Swagger UI's validator badge would send the document to another origin.
    assert "validatorUrl: null" in script
    assert shared_api.client.get("/schema/openapi.json").status_code == 200


def test_the_page_forbids_other_origins_by_its_content_security_policy(shared_api: Api) -> None:
    response = shared_api.client.get("/schema")
    header = response.headers["content-security-policy"]
    directives = dict((part.split()[0], part.split()[1:]) for part in header.split(";") if part.strip())
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    for sources in directives.values():
        assert not [source for source in sources if "://" in source or source in {"*", "https:", "http:"}]
    assert page(shared_api).policy == DOCS_CONTENT_SECURITY_POLICY
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path", ["/schema/assets/../openapi.py", "/schema/assets/%2e%2e/openapi.py", "/schema/assets/nothing.js"]
)
def test_the_assets_route_serves_only_the_static_directory(shared_api: Api, path: str) -> None:
    assert shared_api.client.get(path).status_code == 404


def test_the_vendored_files_are_the_bytes_their_readme_names() -> None:
    readme = (STATIC / "README.md").read_text(encoding="utf-8")
    listed = dict(README_ROW.findall(readme))
    shipped = {f"swagger-ui/{entry.name}" for entry in (STATIC / "swagger-ui").iterdir()}
    assert set(listed) == shipped
    for name, digest in listed.items():
        data = (STATIC / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name
    assert "swagger-ui-dist` 5.35.0" in readme
    assert "Apache-2.0" in readme


def test_the_package_data_ships_every_file_the_page_needs() -> None:
    """The editable install is strict: a file the package data leaves out is missing here, as in a wheel."""
    needed = [
        "static/docs.js",
        "static/README.md",
        "static/swagger-ui/swagger-ui-bundle.js",
        "static/swagger-ui/swagger-ui.css",
        "static/swagger-ui/favicon-32x32.png",
        "static/swagger-ui/LICENSE",
        "static/swagger-ui/NOTICE",
        "openapi_examples.json",
    ]
    package = files("ledger.api")
    for name in needed:
        assert (package / name).is_file(), name
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"
    ]["ledger.api"]
    for name in needed:
        # setuptools globs as `PurePath.match` does: `*` stays within one directory.
        assert any(PurePosixPath(name).match(pattern) for pattern in patterns), name
