"""The API's configuration, read from the environment so that every server worker process sees the same.

| variable | default | meaning |
|---|---|---|
| `LEDGER_DATABASE_URL` | `sqlite:///ledger.db` | the ledger (and its keys) |
| `LEDGER_CORS_ORIGINS` | (none) | comma-separated origins browsers may call the API from; `*` for any |
| `LEDGER_API_THREADS` | 32 | threads for blocking work (database reads, posting, verification) |
| `LEDGER_SIGNING_KEY_FILE` | (none) | the Ed25519 key checkpoints are signed with (`ledger keys signing`) |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

import msgspec

from ledger.projections.service import PAGE_SIZE_MAX as _LIBRARY_PAGE_SIZE_MAX
from ledger.store.application import DEFAULT_DATABASE_URL

__all__ = [
    "BODY_SIZE_MAX",
    "PAGE_SIZE_DEFAULT",
    "PAGE_SIZE_MAX",
    "THREADS_DEFAULT",
    "VIEW_PAGE_SIZE_MAX",
    "ApiSettings",
]

# 1 MiB: a full batch of 1,000 events is about 300 KiB; anything larger is a mistake or an attack.
BODY_SIZE_MAX: Final = 1024 * 1024
PAGE_SIZE_DEFAULT: Final = 100
# A page of the log or of a cadre's history: each entry carries hashes and sources.
PAGE_SIZE_MAX: Final = 1_000
# A page of a ranking or a shortlist (the library's limit): a city's whole ranking in one answer (5,000
# entries are about 1.4 MB of JSON). Request bodies stay bounded by BODY_SIZE_MAX; answers are not.
VIEW_PAGE_SIZE_MAX: Final = _LIBRARY_PAGE_SIZE_MAX
# Reads that wait for the read models (`min_position`) hold a thread while they wait: more threads than
# the loop's default (cores + 4) keep such waits from starving everything else.
THREADS_DEFAULT: Final = 32
THREADS_MAX: Final = 256


class ApiSettings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str = DEFAULT_DATABASE_URL
    cors_origins: tuple[str, ...] = ()
    threads: int = THREADS_DEFAULT
    signing_key_file: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        environ = os.environ if environ is None else environ
        origins = tuple(
            origin.strip() for origin in environ.get("LEDGER_CORS_ORIGINS", "").split(",") if origin.strip()
        )
        threads_text = environ.get("LEDGER_API_THREADS", "")
        try:
            threads = int(threads_text) if threads_text else THREADS_DEFAULT
        except ValueError:
            raise ValueError(f"LEDGER_API_THREADS must be a whole number, not {threads_text!r}") from None
        if not 1 <= threads <= THREADS_MAX:
            raise ValueError(f"LEDGER_API_THREADS must be between 1 and {THREADS_MAX}")
        return cls(
            database_url=environ.get("LEDGER_DATABASE_URL") or DEFAULT_DATABASE_URL,
            cors_origins=origins,
            threads=threads,
            signing_key_file=environ.get("LEDGER_SIGNING_KEY_FILE") or None,
        )
