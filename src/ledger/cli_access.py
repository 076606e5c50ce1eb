"""The shell face of the API: `ledger keys create|list|revoke|demo` and `ledger serve`.

Wired into the main CLI (`ledger.cli`) as a sub-app and a command. It does not import `ledger.cli`, so
that `ledger.cli` can import it at the top. `python -m ledger.cli_access` runs these commands alone.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Final

import msgspec
import typer
from rich.table import Table

from ledger.access import DEMO_SYSTEM, ApiKey, IssuedKey, KeyStore, Role
from ledger.cli_common import EXIT_FAILED, EXIT_INVALID, Database, err, fail, out, print_json, print_table
from ledger.domain.errors import InvalidInput, LedgerError, NotFound
from ledger.domain.events import CadreRegistered
from ledger.domain.periods import period_containing
from ledger.results import TableFinding

__all__ = ["keys_app", "serve"]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8000
WORKERS_MAX: Final = 64
# How far into the log `keys demo` looks for a cadre to use in its examples.
EXAMPLE_SCAN_EVENTS: Final = 2_000
GRACEFUL_SHUTDOWN_SECONDS: Final = 10


keys_app = typer.Typer(
    help="API keys: create, list and revoke them (recorded in the log; only their hashes are stored).",
    no_args_is_help=True,
)
# `posted_by` of the key events the shell records, unless `--by` names the operator.
CLI_OPERATOR: Final = "cli"


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[Format, typer.Option("--format", "-f", help="table or json")]
ByOption = Annotated[
    str,
    typer.Option("--by", help="Who does this: recorded as posted_by of the key event in the log"),
]


@contextmanager
def _keys(database: str | None, by: str = CLI_OPERATOR) -> Iterator[KeyStore]:
    """Open the key store and turn its errors into exit codes and messages."""
    try:
        with KeyStore.open(database, operator=by) as store:
            yield store
    except InvalidInput as error:
        fail(EXIT_INVALID, error.describe())
    except NotFound as error:
        fail(EXIT_INVALID, str(error))
    except LedgerError as error:
        fail(EXIT_FAILED, str(error))


def _key_row(key: ApiKey) -> list[str]:
    return [
        key.key_id,
        key.principal,
        key.role.value,
        key.system or "",
        " ".join(key.event_types),
        key.created_at.isoformat(timespec="seconds"),
        key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
        "demo" if key.demo else "",
    ]


def _print_keys(keys: list[ApiKey], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("key_id", "principal", "role", "system", "event_types", "created_at", "revoked_at", ""):
        table.add_column(column, overflow="fold")
    for key in keys:
        table.add_row(*_key_row(key))
    print_table(table)


@keys_app.command("create")
def create(
    *,
    principal: Annotated[
        str, typer.Argument(help="Who holds the key: recorded as posted_by of every event it posts")
    ],
    role: Annotated[Role, typer.Option(help="poster, reader, auditor or admin")],
    system: Annotated[
        str | None, typer.Option(help="Poster keys: the source.system it posts as (exactly one)")
    ] = None,
    event_types: Annotated[
        str | None,
        typer.Option("--types", help="Poster keys: event types it may post, comma-separated"),
    ] = None,
    database: Database = None,
    by: ByOption = CLI_OPERATOR,
    fmt: FormatOption = Format.table,
) -> None:
    """Create an API key and print it once: the log records it with its hash, never the key."""
    types = [name.strip() for name in (event_types or "").split(",") if name.strip()]
    with _keys(database, by) as store:
        issued = store.create(principal, role, system=system, event_types=types)
    if fmt is Format.json:
        print_json(issued)
        return
    _print_keys([issued.key], "created")
    out.print(f"\n{issued.token}\n", highlight=False)
    err.print("Keep the key now: it is stored only as a hash and cannot be shown again.")


@keys_app.command("list")
def list_keys(
    database: Database = None,
    active: Annotated[bool, typer.Option("--active", help="Only keys not revoked")] = False,
    fmt: FormatOption = Format.table,
) -> None:
    """List the keys (never their secrets)."""
    with _keys(database) as store:
        keys = store.keys(include_revoked=not active)
    if fmt is Format.json:
        print_json(keys)
    else:
        _print_keys(keys, f"{len(keys)} keys")


@keys_app.command("revoke")
def revoke(
    key: Annotated[str, typer.Argument(help="A key id, or a principal (revokes its active key)")],
    database: Database = None,
    by: ByOption = CLI_OPERATOR,
    fmt: FormatOption = Format.table,
) -> None:
    """Revoke a key: requests with it are refused (401) from now on."""
    with _keys(database, by) as store:
        revoked = store.revoke(key)
    if fmt is Format.json:
        print_json(revoked)
    else:
        out.print(f"revoked {revoked.key_id} ({revoked.principal}, {revoked.role.value})", highlight=False)


def _print_findings(findings: list[TableFinding], fmt: Format, title: str) -> None:
    if fmt is Format.json:
        print_json(findings)
        return
    table = Table(title=title, title_justify="left")
    for column in ("row", "reason", "detail"):
        table.add_column(column, overflow="fold")
    for finding in findings:
        table.add_row(finding.row, finding.reason, finding.detail)
    print_table(table)


@keys_app.command("check")
def check(database: Database = None, fmt: FormatOption = Format.table) -> None:
    """Compare the key table with the log; exit 1 if a row disagrees, has no event, or is missing."""
    with _keys(database) as store:
        findings = store.check_against_log()
    if findings:
        _print_findings(findings, fmt, f"{len(findings)} disagreements of ledger_keys with the log")
        raise typer.Exit(EXIT_FAILED)
    if fmt is Format.json:
        print_json(findings)
    else:
        out.print("ok: ledger_keys agrees with the log")


@keys_app.command("rebuild")
def rebuild(database: Database = None, fmt: FormatOption = Format.table) -> None:
    """Rewrite the key table from the log (the log is the record of keys); print what it repaired."""
    with _keys(database) as store:
        findings = store.rebuild()
    if fmt is Format.json:
        print_json(findings)
    elif findings:
        _print_findings(findings, fmt, f"rebuilt ledger_keys from the log: {len(findings)} repaired")
    else:
        out.print("rebuilt ledger_keys from the log: it agreed already")


class _Example(msgspec.Struct, frozen=True):
    cadre_id: str
    unit_id: str
    today: date


def _example(database: str | None) -> _Example | None:
    """A registered cadre of the ledger, for the curl examples; None when there is none."""
    from ledger.ledger import Ledger

    with Ledger.open(database) as ledger:
        for logged in ledger.events(after=0, limit=EXAMPLE_SCAN_EVENTS):
            if isinstance(logged.event, CadreRegistered):
                return _Example(logged.event.cadre_id, logged.event.unit_id, ledger.today())
    return None


def _curl_lines(base_url: str, tokens: dict[Role, str], example: _Example) -> list[str]:
    """Three curl lines: post an event, read that cadre's history, read last quarter's ranking of its unit."""
    event = {
        "events": [
            {
                "type": "merit.awarded",
                "cadre_id": example.cadre_id,
                "effective_on": example.today.isoformat(),
                "source": {"system": DEMO_SYSTEM, "key": f"curl-demo-{example.today.isoformat()}"},
                "award": "citation",
                "level": "unit",
                "document": "demo",
            }
        ]
    }
    last_quarter = period_containing("quarter", example.today).previous().name
    body = msgspec.json.encode(event).decode()
    return [
        f"curl -sS -X POST {base_url}/v1/events -H 'Authorization: Bearer {tokens[Role.poster]}' "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}",
        f"curl -sS '{base_url}/v1/cadres/{example.cadre_id}/history' "
        f"-H 'Authorization: Bearer {tokens[Role.reader]}'",
        f"curl -sS '{base_url}/v1/rankings?scope=unit:{example.unit_id}&period={last_quarter}' "
        f"-H 'Authorization: Bearer {tokens[Role.reader]}'",
    ]


@keys_app.command("demo")
def demo(
    database: Database = None,
    base_url: Annotated[str, typer.Option(help="Where the examples send requests")] = (
        f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
    ),
    by: ByOption = CLI_OPERATOR,
    fmt: FormatOption = Format.table,
) -> None:
    """Issue DEMO keys, one per role, and print them with example curl lines.

    Each run revokes the previous demo keys and issues new ones (secrets are stored only as hashes, so old
    ones cannot be shown again). The demo poster posts as system `demo`, any cadre event type. For trying
    the API on your machine only: revoke them (`ledger keys revoke demo-admin` …) anywhere that matters.
    """
    with _keys(database, by) as store:
        issued: list[IssuedKey] = store.issue_demo_keys()
    if fmt is Format.json:
        print_json(issued)
        return
    tokens = {key.key.role: key.token for key in issued}
    out.print(
        "[bold]DEMO API keys[/] — for trying the API locally; each run of `ledger keys demo` replaces them:"
    )
    for key in issued:
        suffix = f"  (posts as system {key.key.system!r})" if key.key.role is Role.poster else ""
        out.print(f"  {key.key.role.value:<8} {key.token}{suffix}", highlight=False)
    example = _example(database)
    if example is None:
        out.print("\nThe ledger holds no cadres yet: seed one with `ledger demo` to get examples.")
        return
    out.print("\nTry (post an event, read that cadre's history, read last quarter's ranking of its unit):")
    for line in _curl_lines(base_url.rstrip("/"), tokens, example):
        out.print(f"  {line}", highlight=False, soft_wrap=True)
    out.print(f"\nThe API's documentation: {base_url.rstrip('/')}/schema", highlight=False)


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, plus the API's access and error loggers, all on stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "ledger": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
        },
    }


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def serve(
    *,
    database: Database = None,
    host: Annotated[str, typer.Option(help="Address to listen on")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="Port to listen on", min=0, max=65535)] = DEFAULT_PORT,
    workers: Annotated[
        int, typer.Option(help="Worker processes (each opens the ledger)", min=1, max=WORKERS_MAX)
    ] = 1,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin", help="An origin browsers may call from (repeat; '*' for any)"),
    ] = None,
    log_level: Annotated[LogLevel, typer.Option(help="debug, info, warning or error")] = LogLevel.info,
) -> None:
    """Serve the HTTP API (uvicorn with uvloop and httptools) until interrupted."""
    from ledger.ledger import Ledger

    url = database or os.environ.get("LEDGER_DATABASE_URL") or "sqlite:///ledger.db"
    try:
        # Fail here, with a message, rather than in every worker with a traceback.
        with Ledger.open(url) as ledger:
            head = ledger.head()
            ledger_id = ledger.ledger_id
        KeyStore.open(url).close()
    except LedgerError as error:
        fail(EXIT_INVALID, f"cannot open the ledger at {url}: {error}")
    if port:
        _require_free_port(host, port)
    # The app reads its settings from the environment (`ApiSettings.from_environment`).
    os.environ["LEDGER_DATABASE_URL"] = url
    if cors_origin:
        os.environ["LEDGER_CORS_ORIGINS"] = ",".join(cors_origin)
    err.print(
        f"serving ledger {ledger_id} (position {head}) on http://{host}:{port} with {workers} worker(s)",
        highlight=False,
    )
    # With several workers the app is built once, here, and the workers are forked (ledger.api.serving).
    from ledger.api.serving import serve as serve_api

    serve_api(
        host=host,
        port=port,
        workers=workers,
        log_config=_log_config(log_level.value),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


def _require_free_port(host: str, port: int) -> None:
    """Say that the port is taken before saying "serving" (uvicorn would print its own error after ours).
    The probe binds as uvicorn binds: IPv6 for a host with a colon, else IPv4, with SO_REUSEADDR, so a
    port in TIME_WAIT counts as free."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror as error:
            fail(EXIT_INVALID, f"--host: cannot listen on {host!r}: {error.strerror}")
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                fail(
                    EXIT_INVALID,
                    f"--port: {host}:{port} is in use by another server; choose another port "
                    "(`--port 8001`, or `PORT=8001 make run`)",
                )
            fail(EXIT_INVALID, f"--host: cannot listen on {host}:{port} ({error.strerror})")


def _standalone() -> typer.Typer:
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    app.add_typer(keys_app, name="keys")
    app.command()(serve)
    return app


if __name__ == "__main__":
    _standalone()()
