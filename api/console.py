"""The web console at `/console`: a small static app (HTML, ES modules, CSS) that reads the API in a browser.

Departments and auditors sign in with a reader or auditor key and look at rankings, red and black boards,
the 回炉 list, escalations, a cadre's history and eligibility, and (auditors) the log, its verification and
checkpoints — at any past `known_at` (docs/console.md). The files live in the package (`console/`), so the
console ships in the wheel and loads nothing from another origin; there is no build step.

Every answer under `/console` carries a strict Content-Security-Policy: scripts, styles and requests only
from the app's own origin, no inline script or style, no form submission anywhere (the sign-in form is
handled by script: a key can never land in a URL), no framing. The files need no key; the data they show
comes from the `/v1` routes, which the console calls with the key as a Bearer header.

The files are served from memory, each with a strong ETag and `Cache-Control: no-cache`: a browser
revalidates every file on each load and gets a 304 of a few bytes, so a new version shows at once and a
load costs no disk or thread. A file changed on disk (a development checkout) is read again.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Final

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import PathParameter
from litestar.router import Router

__all__ = [
    "CONSOLE_CONTENT_SECURITY_POLICY",
    "CONSOLE_HEADERS",
    "CONSOLE_PATH",
    "console_directory",
    "router",
]

CONSOLE_PATH: Final = "/console"
CONSOLE_CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
CONSOLE_HEADERS: Final = {
    "content-security-policy": CONSOLE_CONTENT_SECURITY_POLICY,
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "cache-control": "no-cache",
}
MEDIA_TYPES: Final = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
}
SHELL: Final = "index.html"


def console_directory() -> Path:
    """The package's `console/` directory (a real directory: the wheel installs unzipped)."""
    return Path(str(files("ledger.api") / "console"))


@dataclass(frozen=True)
class _File:
    body: bytes
    etag: str
    media_type: str
    stamp: tuple[int, int]


_lock = threading.Lock()
_cache: dict[str, _File] = {}


def _load(name: str) -> _File:
    """The file `name` of the console's directory (nothing else: no path, no hidden file), from memory."""
    suffix = Path(name).suffix
    if "/" in name or "\\" in name or "\x00" in name or name.startswith(".") or suffix not in MEDIA_TYPES:
        raise NotFoundException(f"no console file {name!r}")
    path = console_directory() / name
    try:
        status = path.stat()
    except OSError:
        raise NotFoundException(f"no console file {name!r}") from None
    stamp = (status.st_mtime_ns, status.st_size)
    with _lock:
        cached = _cache.get(name)
        if cached is not None and cached.stamp == stamp:
            return cached
    body = path.read_bytes()
    loaded = _File(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"', MEDIA_TYPES[suffix], stamp)
    with _lock:
        _cache[name] = loaded
    return loaded


def _answer(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
    found = _load(name)
    headers = {**CONSOLE_HEADERS, "etag": found.etag}
    if found.etag in {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}:
        return Response(b"", status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)


@get(["/", "/index.html"], include_in_schema=False, sync_to_thread=False, name="console-shell")
def shell(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The console's one HTML page; its hash routes (`#/rankings?…`) never reach the server."""
    return _answer(request, SHELL)


@get("/{name:str}", include_in_schema=False, sync_to_thread=False, name="console-file")
def asset(request: Request[Any, Any, Any], name: Annotated[str, PathParameter()]) -> Response[bytes]:
    """A module or the style sheet of the console."""
    return _answer(request, name)


router: Final[Router] = Router(path=CONSOLE_PATH, route_handlers=[shell, asset])
