"""The auditor's shell face: `ledger verify`, `ledger checkpoint`, `ledger proof …` and the checkpoint
signing keys (`ledger keys signing …`). Exit codes as everywhere (SPEC §10): 0 ok, 1 verification failed,
2 invalid input or usage.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from eventsourcing.persistence import PersistenceError
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import DBAPIError

from ledger.access import key_findings
from ledger.cli_common import (
    EXIT_FAILED,
    EXIT_INVALID,
    Database,
    err,
    fail,
    out,
    print_json,
    print_table,
    progress_bar,
)
from ledger.domain.errors import (
    Conflict,
    IntegrityFailure,
    InvalidInput,
    LedgerError,
    NotFound,
    StoreUnavailable,
)
from ledger.ledger import Ledger
from ledger.signing import SIGNING_KEY_FILE_ENV, PublishedKey, Signer, create_key_file
from ledger.store.faults import store_fault
from ledger_verify.checkpoint import CheckpointDocument, CheckpointError, parse_checkpoint

__all__ = ["checkpoint", "opened", "proof_app", "signing_app", "verify"]

# `posted_by` of the signing key events the shell records, unless `--by` names the operator.
CLI_OPERATOR = "cli"


class AuditFormat(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[AuditFormat, typer.Option("--format", "-f", help="table or json")]
SigningKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--signing-key",
        envvar=SIGNING_KEY_FILE_ENV,
        help="Sign with the Ed25519 private key in this file (made by `ledger keys signing create`)",
    ),
]

proof_app = typer.Typer(
    help="Merkle proofs (RFC 9162) an auditor checks with `ledger-verify`, with no database.",
    no_args_is_help=True,
)
signing_app = typer.Typer(
    help="Checkpoint signing keys: the private key in a file, the public key published in the log.",
    no_args_is_help=True,
)


@contextmanager
def opened(database: str | None, **options: Any) -> Iterator[Ledger]:
    """Open the ledger and turn its errors into exit codes and messages."""
    try:
        with Ledger.open(database, **options) as ledger:
            yield ledger
    except InvalidInput as error:
        fail(EXIT_INVALID, error.describe())
    except Conflict as error:
        fail(EXIT_FAILED, f"conflict [exists_with_different_content]: {error}")
    except NotFound as error:
        fail(EXIT_INVALID, str(error))
    except IntegrityFailure as error:
        fail(EXIT_FAILED, str(error))
    except StoreUnavailable as error:
        fail(EXIT_FAILED, f"{error} [{error.cause}]; try again in {error.retry_after} s")
    except LedgerError as error:
        fail(EXIT_FAILED, str(error))
    except (PersistenceError, DBAPIError) as error:
        fault = store_fault(error)
        if fault is None:
            raise
        fail(EXIT_FAILED, f"{fault} [{fault.cause}]; try again in {fault.retry_after} s")


def _read_checkpoint(path: Path, option: str) -> CheckpointDocument:
    try:
        return parse_checkpoint(path.read_bytes())
    except OSError as error:
        fail(EXIT_INVALID, f"{option} {path}: cannot read it ({error.strerror or error})")
    except CheckpointError as error:
        fail(EXIT_INVALID, f"{option} {path}: not a checkpoint ({error})")


def verify(
    database: Database = None,
    against: Annotated[Path | None, typer.Option(help="A checkpoint JSON the log must extend")] = None,
    read_models: Annotated[
        bool,
        typer.Option(
            "--read-models",
            help="Also refold the log and compare it with the persisted read models (facts, tracking) "
            "and the persisted writer state",
        ),
    ] = False,
    fmt: FormatOption = AuditFormat.table,
) -> None:
    """Recompute the hash chain and the Merkle tree; exit 1 naming the first position that fails (or, with
    --read-models, the first difference between the read models and the log)."""
    checkpoint_ = None if against is None else _read_checkpoint(against, "--against")
    with opened(database, create=False) as ledger:
        total = ledger.head()
        with progress_bar() as progress:
            task = progress.add_task("verifying", total=total)
            report = ledger.verify(checkpoint_, progress=lambda n: progress.advance(task, n))
        report = report.with_findings(key_findings(ledger))
        if read_models:
            from ledger.projections.integrity import persisted_index_findings, read_model_findings
            from ledger.projections.store import FactStore

            store = FactStore(ledger.url)
            try:
                report = report.with_findings(read_model_findings(ledger, store))
                # The file an open maps: a forged one would be served until the next rebuild.
                report = report.with_findings(persisted_index_findings(ledger, store))
            finally:
                store.close()
            report = report.with_findings(ledger.writer_state_findings())
    if fmt is AuditFormat.json:
        print_json(report)
    elif report.first_bad_position is None:
        extends = ""
        if checkpoint_ is not None:
            extends = " (extends the checkpoint" + (
                f", signed by key {checkpoint_.key_id})" if checkpoint_.signed else ")"
            )
        out.print(
            ("ok: verified" if report.ok else "the chain verifies")
            + f" through position {report.verified_through}, head hash {report.head_hash}, "
            f"tree head {report.root_hash}{extends}",
            highlight=False,
        )
    else:
        err.print(
            f"[bold red]verification failed[/] at position {report.first_bad_position}: "
            f"{report.reason}: {escape(report.detail or '')} (verified through {report.verified_through})",
            highlight=False,
        )
    if fmt is not AuditFormat.json:
        if read_models and not report.findings:
            out.print("ok: the read models agree with the log", highlight=False)
        for finding in report.findings:
            err.print(
                f"[bold red]{escape(finding.table)}[/] {escape(finding.row)}: {finding.reason}: "
                f"{escape(finding.detail)}",
                highlight=False,
            )
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


def checkpoint(
    database: Database = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file")] = None,
    signing_key: SigningKeyOption = None,
) -> None:
    """Print (or write) a checkpoint of the log's head, signed when a signing key is configured: keep it
    away from the database."""
    with opened(database, create=False) as ledger:
        signer = None if signing_key is None else Signer.from_file(signing_key)
        document = ledger.checkpoint(signer)
    encoded = msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n"
    if output is None:
        sys.stdout.buffer.write(encoded)
    else:
        output.write_bytes(encoded)
        signed = f", signed by key {document.key_id}" if document.key_id else ", unsigned"
        err.print(f"checkpoint at tree size {document.tree_size}{signed}, written to {output}")


# Proofs.


@proof_app.command("inclusion")
def proof_inclusion(
    position: Annotated[int, typer.Argument(help="The event's position in the log (1 …)")],
    tree_size: Annotated[
        int | None, typer.Option("--tree-size", help="The tree to prove against (default: the head)")
    ] = None,
    database: Database = None,
    fmt: FormatOption = AuditFormat.table,
) -> None:
    """Prove that the event at POSITION is in the tree of --tree-size events (RFC 9162 §2.1.3)."""
    with opened(database, create=False) as ledger:
        document = ledger.inclusion_proof(position, tree_size)
    if fmt is AuditFormat.json:
        print_json(document)
        return
    table = Table("step", "sibling hash", title=f"position {position} in the tree of {document.tree_size}")
    for step, hash_ in enumerate(document.audit_path, start=1):
        table.add_row(str(step), hash_)
    out.print(f"leaf hash {document.leaf_hash}\ntree head {document.root_hash}", highlight=False)
    print_table(table)


@proof_app.command("consistency")
def proof_consistency(
    first: Annotated[int, typer.Argument(help="The older tree's size (a checkpoint's tree_size)")],
    second: Annotated[int | None, typer.Argument(help="The newer tree's size (default: the head)")] = None,
    database: Database = None,
    fmt: FormatOption = AuditFormat.table,
) -> None:
    """Prove that the tree of SECOND events extends the tree of FIRST (RFC 9162 §2.1.4)."""
    with opened(database, create=False) as ledger:
        document = ledger.consistency_proof(first, second)
    if fmt is AuditFormat.json:
        print_json(document)
        return
    table = Table("step", "hash", title=f"the tree of {document.second} extends the tree of {first}")
    for step, hash_ in enumerate(document.proof, start=1):
        table.add_row(str(step), hash_)
    out.print(
        f"tree head at {first}: {document.first_root}\ntree head at {document.second}: "
        f"{document.second_root}",
        highlight=False,
    )
    print_table(table)


# Signing keys.


def _key_document(key: PublishedKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "algorithm": "ed25519",
        "public_key": key.public_key,
        "published_at": key.published_at,
        "position": key.position,
        "retired_at": key.retired_at,
    }


@signing_app.command("create")
def signing_create(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The file to write the private key to (never overwritten)")
    ],
    database: Database = None,
    by: Annotated[str, typer.Option("--by", help="Recorded as posted_by of the key's event")] = CLI_OPERATOR,
) -> None:
    """Make an Ed25519 key pair: the private key into --output (mode 0600), the public key into
    OUTPUT.pub and into the log (`signing_key.published`). Point LEDGER_SIGNING_KEY_FILE at the file."""
    with opened(database) as ledger:
        try:
            signer = create_key_file(output)
        except InvalidInput as error:
            fail(EXIT_INVALID, error.describe())
        try:
            published = ledger.signing_keys.publish(signer, by=by)
        except BaseException:
            # Not published: a key the log does not know signs nothing; do not leave it lying about.
            output.unlink(missing_ok=True)
            output.with_name(output.name + ".pub").unlink(missing_ok=True)
            raise
    out.print(
        f"signing key {published.key_id} published at position {published.position}\n"
        f"private key: {output} (keep it secret; set {SIGNING_KEY_FILE_ENV}={output})\n"
        f"public key:  {output}.pub (give it to auditors: ledger-verify --public-key)",
        highlight=False,
    )


@signing_app.command("list")
def signing_list(database: Database = None, fmt: FormatOption = AuditFormat.table) -> None:
    """The signing keys the log publishes."""
    with opened(database, create=False) as ledger:
        keys = list(ledger.signing_keys.published().values())
    if fmt is AuditFormat.json:
        print_json([_key_document(key) for key in keys])
        return
    table = Table("key", "public key", "published", "retired")
    for key in keys:
        table.add_row(
            key.key_id,
            key.public_key,
            key.published_at.isoformat(timespec="seconds"),
            key.retired_at.isoformat(timespec="seconds") if key.retired_at else "",
        )
    print_table(table)


@signing_app.command("retire")
def signing_retire(
    key_id: Annotated[str, typer.Argument(help="The key's id (ledger keys signing list)")],
    database: Database = None,
    by: Annotated[str, typer.Option("--by", help="Recorded as posted_by of the key's event")] = CLI_OPERATOR,
) -> None:
    """Record that a signing key signs no more checkpoints (those it signed still verify)."""
    with opened(database, create=False) as ledger:
        retired = ledger.signing_keys.retire(key_id, by=by)
    assert retired.retired_at is not None
    out.print(f"signing key {key_id} retired at {retired.retired_at.isoformat()}", highlight=False)
    if os.environ.get(SIGNING_KEY_FILE_ENV):
        err.print(f"note: {SIGNING_KEY_FILE_ENV} is set; a retired key signs nothing", highlight=False)
