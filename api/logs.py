"""The access log: one line per request (method, path, status, milliseconds, principal), `ledger.api.access`.

It wraps Litestar's whole ASGI handler, outside routing and CORS, so requests to unknown routes and CORS
preflights are logged too. Errors are logged where they are mapped (`ledger.api.problems`).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Final

__all__ = ["AccessLog"]

logger = logging.getLogger("ledger.api.access")

ASGIApp = Any


class AccessLog:
    """ASGI middleware that logs each HTTP request once its response has started."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_and_note(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            if logger.isEnabledFor(logging.INFO):
                key = scope.get("user")
                principal = getattr(key, "principal", "-")
                client = scope.get("client") or ("-", 0)
                logger.info(
                    '%s "%s %s" %d %.1fms %s',
                    client[0],
                    scope["method"],
                    _printable(scope["path"]),
                    status,
                    (time.perf_counter() - started) * 1000,
                    principal,
                )


_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f\\\"]")


def _printable(path: str) -> str:
    """The path as one line of the log: a control character (a CR/LF would start a forged line, a NUL
    makes the file binary to grep), a quote or a backslash is written as its percent escape."""
    return _CONTROL.sub(lambda found: f"%{ord(found.group()):02X}", path)
