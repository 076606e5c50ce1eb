"""`ledger-verify`: an auditor's checks of exports and proofs, against checkpoints built here.

Goal: issue 12, item 4 — with no database and nothing of the ledger, `ledger-verify` accepts an export, an
inclusion proof or a consistency proof that holds against a checkpoint, and refuses with exit 1 and a
line naming what failed every alteration: a byte changed anywhere, a line removed or swapped, a header
changed, a checkpoint of another ledger, cut short or changed under its signature, a wrong key; inputs
that are not what they should be exit 2. Method: a real ledger (SQLite) records a few events and exports
them; the checkpoints and proofs are built in this test from the database rows — the ledger's canonical
bytes and chain hashes, a naive recursive MTH and RFC 9162's PATH / SUBPROOF written in the property tests
— and signed here with Ed25519, never by the code under test. The verifier runs in-process through
`ledger_verify.cli.main`, and once as the installed console script.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ledger import Ledger
from ledger.domain.events import MeritAwarded, Source
from ledger.integrity.chain import canonical_bytes
from ledger_verify import export as export_module
from ledger_verify.checkpoint import CheckpointDocument, parse_checkpoint, signed_bytes
from ledger_verify.cli import main
from ledger_verify.export import ExportReport
from tests.conftest import fixed_clock, registration
from tests.property.test_merkle_proofs import mth, path, subproof
from tests.support import raw_sql

FIRST_EVENTS = 12  # posted before the first export (the ledger's own policy event comes first)
MORE_EVENTS = 5  # posted before the second
FORBIDDEN_MODULES = ("ledger", "msgspec", "sqlalchemy", "eventsourcing", "typer", "rich")


def merit(key: str, cadre_id: str) -> MeritAwarded:
    return MeritAwarded(
        cadre_id=cadre_id,
        effective_on=date(2024, 6, 1),
        source=Source(system="merit-office", key=key),
        document="仙组通〔2025〕12号",
        award="citation",
        level="county",  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Log:
    """A ledger's log as its database holds it, and two exports of it."""

    ledger_id: str
    canonicals: list[bytes]  # position 1 first
    recorded_at: list[str]
    chain_hashes: list[str]  # the chain hash at position 0, 1, …
    early: bytes  # the export when the log had `early_size` events
    early_size: int
    export: bytes  # the export of the whole log

    @property
    def size(self) -> int:
        return len(self.canonicals)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    url = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.db'}"
    with Ledger.open(url, clock=fixed_clock) as ledger:
        ledger.post([registration(f"C{number}", key=f"reg-C{number}") for number in range(1, 4)])
        ledger.post([merit(f"m-{number}", f"C{number % 3 + 1}") for number in range(FIRST_EVENTS - 3)])
        early = io.BytesIO()
        ledger.export(early)
        early_size = ledger.head()
        ledger.post([merit(f"n-{number}", "C1") for number in range(MORE_EVENTS)])
        whole = io.BytesIO()
        ledger.export(whole)
        ledger_id = ledger.ledger_id
        chain_hashes = [bytes(32).hex()] + [
            hash_.hex() for position in range(1, ledger.head() + 1) if (hash_ := ledger.hash_at(position))
        ]
    rows = raw_sql(
        url,
        "SELECT e.rowid, c.recorded_at, e.state FROM stored_events e "
        "JOIN ledger_chain c ON c.position = e.rowid ORDER BY e.rowid",
    )
    assert [row[0] for row in rows] == list(range(1, len(rows) + 1))
    assert len(chain_hashes) == len(rows) + 1
    return Log(
        ledger_id=ledger_id,
        canonicals=[
            canonical_bytes(position, recorded_at, bytes(state)) for position, recorded_at, state in rows
        ],
        recorded_at=[recorded_at for _position, recorded_at, _state in rows],
        chain_hashes=chain_hashes,
        early=early.getvalue(),
        early_size=early_size,
        export=whole.getvalue(),
    )


def checkpoint_of(log: Log, size: int, **changes: Any) -> dict[str, Any]:
    document = {
        "ledger_id": log.ledger_id,
        "tree_size": size,
        "root_hash": mth(log.canonicals[:size]).hex(),
        "chain_hash": log.chain_hashes[size],
        "recorded_at": log.recorded_at[size - 1] if size else "",
        "key_id": None,
        "signature": None,
    }
    document.update(changes)
    return document


SECRET = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"the auditor's test key").digest())
OTHER_SECRET = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"another key").digest())


def raw_public(secret: Ed25519PrivateKey) -> bytes:
    return secret.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


KEY_ID = hashlib.sha256(raw_public(SECRET)).hexdigest()[:16]


def signed(document: dict[str, Any], secret: Ed25519PrivateKey = SECRET) -> dict[str, Any]:
    """`document` signed as checkpoint.py documents: key_id the first 16 hex digits of SHA-256 of the raw
    public key, the signature over `signed_bytes`."""
    key_id = hashlib.sha256(raw_public(secret)).hexdigest()[:16]
    message = signed_bytes(
        document["ledger_id"],
        document["tree_size"],
        document["root_hash"],
        document["chain_hash"],
        document["recorded_at"],
        key_id,
    )
    return {**document, "key_id": key_id, "signature": secret.sign(message).hex()}


def inclusion_of(log: Log, position: int, size: int) -> dict[str, Any]:
    leaf = log.canonicals[position - 1]
    return {
        "position": position,
        "tree_size": size,
        "leaf_hash": hashlib.sha256(b"\x00" + leaf).hexdigest(),
        "root_hash": mth(log.canonicals[:size]).hex(),
        "audit_path": [hash_.hex() for hash_ in path(position - 1, log.canonicals[:size])],
        "leaf": leaf.decode(),
    }


def consistency_of(log: Log, first: int, second: int) -> dict[str, Any]:
    return {
        "first": first,
        "second": second,
        "first_root": mth(log.canonicals[:first]).hex(),
        "second_root": mth(log.canonicals[:second]).hex(),
        "proof": [hash_.hex() for hash_ in subproof(first, log.canonicals[:second], True)],
    }


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


Verify = Callable[..., Run]


@pytest.fixture
def verify(capsys: pytest.CaptureFixture[str]) -> Verify:
    def run(*arguments: str | Path) -> Run:
        code = main([str(argument) for argument in arguments])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


class Files:
    """Writes the documents of one test into its temporary directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0

    def bytes(self, content: bytes, name: str = "file") -> Path:
        self.count += 1
        target = self.directory / f"{self.count}-{name}"
        target.write_bytes(content)
        return target

    def json(self, document: Any, name: str = "document.json") -> Path:
        return self.bytes(json.dumps(document).encode(), name)

    def key(self, secret: Ed25519PrivateKey = SECRET, *, form: str = "pem") -> Path:
        public = secret.public_key()
        if form == "hex":
            return self.bytes(raw_public(secret).hex().encode() + b"\n", "key.hex")
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return self.bytes(pem, "key.pem")


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


def assert_one_line(text: str) -> None:
    assert text.endswith("\n") and text.count("\n") == 1, text


def ok(run: Run) -> str:
    assert run.code == 0, run
    assert run.err == ""
    assert_one_line(run.out)
    assert run.out.startswith("ok: ")
    return run.out


def failed(run: Run) -> str:
    assert run.code == 1, run
    assert run.err == ""
    assert_one_line(run.out)
    assert run.out.startswith("failed: ")
    return run.out


def invalid(run: Run) -> str:
    assert run.code == 2, run
    assert run.out == ""
    assert_one_line(run.err)
    assert run.err.startswith("error: ")
    return run.err


def lines_of(export: bytes) -> list[bytes]:
    return export.splitlines(keepends=True)


# Exports.


def test_an_export_verifies_against_a_checkpoint_of_its_head(log: Log, files: Files, verify: Verify) -> None:
    checkpoint = checkpoint_of(log, log.size)
    out = ok(verify("export", files.bytes(log.export), files.json(checkpoint)))
    assert out == (
        f"ok: export of ledger {log.ledger_id} verified through position {log.size}; matches the "
        f"checkpoint at {log.size} (root {checkpoint['root_hash']}) unsigned\n"
    )


def test_a_longer_export_extends_an_older_checkpoint(log: Log, files: Files, verify: Verify) -> None:
    checkpoint = checkpoint_of(log, log.early_size)
    out = ok(verify("export", files.bytes(log.export), files.json(checkpoint)))
    assert f"verified through position {log.size}; extends the checkpoint at {log.early_size} " in out


def test_a_checkpoint_at_every_size_holds_and_its_changed_heads_do_not(
    log: Log, files: Files, verify: Verify
) -> None:
    export = files.bytes(log.export)
    for size in range(log.size + 1):
        checkpoint = checkpoint_of(log, size)
        ok(verify("export", export, files.json(checkpoint)))
        where = f"line {size + 1} (position {size}): " if size else ""
        other_root = mth(log.canonicals[: size + 1] if size < log.size else log.canonicals[:1]).hex()
        out = failed(verify("export", export, files.json({**checkpoint, "root_hash": other_root})))
        assert out.startswith(f"failed: {where}the Merkle tree head of the first {size} events is ")
        other_chain = log.chain_hashes[size + 1 if size < log.size else 0]
        out = failed(verify("export", export, files.json({**checkpoint, "chain_hash": other_chain})))
        assert out.startswith(f"failed: {where}the chain hash at position {size} is {log.chain_hashes[size]}")
        if size:
            changed = {**checkpoint, "recorded_at": "2000-01-01T00:00:00.000000Z"}
            out = failed(verify("export", export, files.json(changed)))
            assert out.startswith(f"failed: {where}position {size} was recorded at ")


def test_an_export_shorter_than_the_checkpoint_fails(log: Log, files: Files, verify: Verify) -> None:
    checkpoint = files.json(checkpoint_of(log, log.size))
    out = failed(verify("export", files.bytes(log.early), checkpoint))
    assert out == (
        f"failed: the export ends at position {log.early_size}, before the checkpoint's tree size "
        f"{log.size}: it is truncated, or the log was cut back\n"
    )
    lines = lines_of(log.export)
    for kept in range(1, len(lines)):  # the header and `kept - 1` events
        out = failed(verify("export", files.bytes(b"".join(lines[:kept])), checkpoint))
        assert f"the export ends at position {kept - 1}, before the checkpoint's tree size" in out


def test_one_byte_changed_anywhere_in_an_event_line_fails_at_that_line(
    log: Log, files: Files, verify: Verify
) -> None:
    """Every byte of every event line, the newline too, changed to three other values: the check fails at
    that line (through `verify_export` itself, in memory; the command for a sample)."""
    checkpoint = parse_checkpoint(json.dumps(checkpoint_of(log, log.size)).encode())
    lines = lines_of(log.export)
    for number in range(2, len(lines) + 1):
        line = lines[number - 1]
        for offset in range(len(line)):
            for replacement in {line[offset] ^ 0x01, line[offset] ^ 0x20, ord("\n")} - {line[offset]}:
                altered = line[:offset] + bytes([replacement]) + line[offset + 1 :]
                content = b"".join([*lines[: number - 1], altered, *lines[number:]])
                report = export_module.verify_export(io.BytesIO(content), checkpoint)
                assert (report.line, report.position) == (number, number - 1), (offset, report.failure)
    document = files.json(checkpoint_of(log, log.size))
    for number, offset in ((2, 0), (3, 40), (5, -100), (len(lines), -2)):
        line = lines[number - 1]
        altered = line[:offset] + bytes([line[offset] ^ 0x01]) + line[offset:][1:]
        content = b"".join([*lines[: number - 1], altered, *lines[number:]])
        out = failed(verify("export", files.bytes(content), document))
        assert out.startswith(f"failed: line {number} (position {number - 1}): ")


def test_a_removed_line_fails_where_it_is_missing(log: Log, files: Files, verify: Verify) -> None:
    checkpoint = files.json(checkpoint_of(log, log.early_size))
    lines = lines_of(log.export)
    for number in range(2, len(lines)):
        out = failed(
            verify("export", files.bytes(b"".join(lines[: number - 1] + lines[number:])), checkpoint)
        )
        assert out == (
            f"failed: line {number} (position {number - 1}): it says position {number}: lines before it "
            "are missing or out of order\n"
        )
    out = failed(verify("export", files.bytes(b"".join(lines[:-1])), checkpoint))
    assert f"the header says the export ends at position {log.size}, its last line is position" in out


def test_two_swapped_lines_fail_at_the_first(log: Log, files: Files, verify: Verify) -> None:
    checkpoint = files.json(checkpoint_of(log, log.size))
    lines = lines_of(log.export)
    for number in range(2, len(lines)):
        swapped = [*lines[: number - 1], lines[number], lines[number - 1], *lines[number + 1 :]]
        out = failed(verify("export", files.bytes(b"".join(swapped)), checkpoint))
        assert out.startswith(f"failed: line {number} (position {number - 1}): it says position {number}: ")


def test_a_line_repeated_fails(log: Log, files: Files, verify: Verify) -> None:
    lines = lines_of(log.export)
    repeated = [*lines[:4], lines[3], *lines[4:]]
    out = failed(verify("export", files.bytes(b"".join(repeated)), files.json(checkpoint_of(log, log.size))))
    assert out.startswith(
        "failed: line 5 (position 4): it says position 3: lines are repeated or out of order"
    )


def test_a_changed_header_fails(log: Log, files: Files, verify: Verify) -> None:
    checkpoint = files.json(checkpoint_of(log, log.early_size))
    lines = lines_of(log.export)
    header = json.loads(lines[0])

    def with_header(**changes: Any) -> Path:
        return files.bytes(json.dumps({**header, **changes}).encode() + b"\n" + b"".join(lines[1:]))

    out = failed(verify("export", with_header(position=log.size + 1), checkpoint))
    assert out == (
        f"failed: the header says the export ends at position {log.size + 1}, its last line is position "
        f"{log.size}: lines were cut off or added\n"
    )
    out = failed(verify("export", with_header(head_hash=log.chain_hashes[3]), checkpoint))
    assert out.startswith(f"failed: the header's head_hash {log.chain_hashes[3]} is not the hash of the last")
    out = failed(verify("export", with_header(ledger_id="another-ledger"), checkpoint))
    assert (
        out == f"failed: the export is of ledger another-ledger, the checkpoint of ledger {log.ledger_id}\n"
    )
    for changes, field in (({"format": "cadre-ledger-export/2"}, "format"), ({"position": -1}, "position")):
        err = invalid(verify("export", with_header(**changes), checkpoint))
        assert err.startswith(f"error: {files.directory}") and f": {field}: expected" in err
    err = invalid(verify("export", files.bytes(b"{not json\n" + b"".join(lines[1:])), checkpoint))
    assert ": line 1: the header: not JSON" in err


def test_a_checkpoint_of_another_ledger_fails(log: Log, files: Files, verify: Verify) -> None:
    checkpoint = checkpoint_of(log, log.size, ledger_id="00000000-0000-4000-8000-000000000000")
    out = failed(verify("export", files.bytes(log.export), files.json(checkpoint)))
    assert out == (
        f"failed: the export is of ledger {log.ledger_id}, the checkpoint of ledger "
        "00000000-0000-4000-8000-000000000000\n"
    )


def test_an_old_checkpoint_of_the_chain_only_holds_the_chain(log: Log, files: Files, verify: Verify) -> None:
    old = {
        "ledger_id": log.ledger_id,
        "position": log.early_size,
        "hash": log.chain_hashes[log.early_size],
        "recorded_at": log.recorded_at[log.early_size - 1],
    }
    out = ok(verify("export", files.bytes(log.export), files.json(old)))
    assert out.endswith(
        f"extends the checkpoint at {log.early_size} (chain hash {old['hash']}; a checkpoint of the chain "
        "only, no root) unsigned\n"
    )
    rewritten = {**old, "hash": log.chain_hashes[1]}
    out = failed(verify("export", files.bytes(log.export), files.json(rewritten)))
    assert f"line {log.early_size + 1} (position {log.early_size}): the chain hash at position" in out


# Signatures.


def test_a_signed_checkpoint_verifies_with_its_public_key_as_pem_or_hex(
    log: Log, files: Files, verify: Verify
) -> None:
    checkpoint = signed(checkpoint_of(log, log.size))
    export, document = files.bytes(log.export), files.json(checkpoint)
    for form in ("pem", "hex"):
        out = ok(verify("export", export, document, "--public-key", files.key(form=form)))
        assert out.endswith(f"(root {checkpoint['root_hash']}) signed by key {checkpoint['key_id']}\n")


def test_without_a_public_key_a_signature_is_not_checked_and_the_verdict_says_so(
    log: Log, files: Files, verify: Verify
) -> None:
    checkpoint = signed(checkpoint_of(log, log.size), OTHER_SECRET)
    checkpoint["signature"] = "00" * 64
    out = ok(verify("export", files.bytes(log.export), files.json(checkpoint)))
    assert out.endswith(f"signed by key {checkpoint['key_id']} (signature not checked: no --public-key)\n")


def test_a_signature_over_a_changed_checkpoint_fails_for_every_field(
    log: Log, files: Files, verify: Verify
) -> None:
    original = signed(checkpoint_of(log, log.size))
    export, key = files.bytes(log.export), files.key()
    changes = {
        "ledger_id": "00000000-0000-4000-8000-000000000000",
        "tree_size": log.early_size,
        "root_hash": mth(log.canonicals[:3]).hex(),
        "chain_hash": log.chain_hashes[3],
        "recorded_at": log.recorded_at[0],
        "signature": ("0" if original["signature"][0] != "0" else "1") + original["signature"][1:],
    }
    for field, value in changes.items():
        document = files.json({**original, field: value})
        out = failed(verify("export", export, document, "--public-key", key))
        assert out == f"failed: checkpoint {document}: the signature does not match the checkpoint\n", field
    document = files.json({**original, "key_id": "0123456789abcdef"})
    out = failed(verify("export", export, document, "--public-key", key))
    assert out == (
        f"failed: checkpoint {document}: the checkpoint names key 0123456789abcdef, the public key given is "
        f"{original['key_id']}\n"
    )


def test_a_wrong_public_key_fails(log: Log, files: Files, verify: Verify) -> None:
    checkpoint = signed(checkpoint_of(log, log.size))
    document = files.json(checkpoint)
    out = failed(verify("export", files.bytes(log.export), document, "--public-key", files.key(OTHER_SECRET)))
    other_id = hashlib.sha256(raw_public(OTHER_SECRET)).hexdigest()[:16]
    assert out == (
        f"failed: checkpoint {document}: the checkpoint names key {checkpoint['key_id']}, the public key "
        f"given is {other_id}\n"
    )


def test_a_public_key_with_an_unsigned_checkpoint_fails(log: Log, files: Files, verify: Verify) -> None:
    export, key = files.bytes(log.export), files.key()
    document = files.json(checkpoint_of(log, log.size))
    out = failed(verify("export", export, document, "--public-key", key))
    assert out == f"failed: checkpoint {document}: the checkpoint is not signed\n"
    old = {
        "ledger_id": log.ledger_id,
        "position": log.size,
        "hash": log.chain_hashes[log.size],
        "recorded_at": log.recorded_at[-1],
    }
    document = files.json(old)
    out = failed(verify("export", export, document, "--public-key", key))
    assert out == f"failed: checkpoint {document}: the checkpoint is not signed\n"


# Inclusion proofs.


def test_an_inclusion_proof_of_every_event_verifies(log: Log, files: Files, verify: Verify) -> None:
    checkpoint = signed(checkpoint_of(log, log.size))
    document, key = files.json(checkpoint), files.key()
    for position in range(1, log.size + 1):
        event = json.loads(log.canonicals[position - 1])
        out = ok(
            verify(
                "inclusion", files.json(inclusion_of(log, position, log.size)), document, "--public-key", key
            )
        )
        assert out == (
            f"ok: event {event['type']} {event['event_id']} at position {position} is in the tree of "
            f"{log.size} events of ledger {log.ledger_id} (root {checkpoint['root_hash']}) signed by key "
            f"{checkpoint['key_id']}\n"
        )


def test_an_inclusion_proof_with_an_altered_leaf_wrong_root_size_or_path_fails(
    log: Log, files: Files, verify: Verify
) -> None:
    position, size = log.size - 2, log.size  # a merit
    proof = inclusion_of(log, position, size)
    document = files.json(checkpoint_of(log, size))
    altered_leaf = proof["leaf"].replace("county", "city", 1)
    assert altered_leaf != proof["leaf"]
    out = failed(verify("inclusion", files.json({**proof, "leaf": altered_leaf}), document))
    assert out == "failed: the leaf_hash is not SHA-256(0x00 ‖ leaf): the event's bytes were altered\n"
    rehashed = {
        **proof,
        "leaf": altered_leaf,
        "leaf_hash": hashlib.sha256(b"\x00" + altered_leaf.encode()).hexdigest(),
    }
    out = failed(verify("inclusion", files.json(rehashed), document))
    assert out == (
        f"failed: the audit_path does not lead from the leaf at position {position} to the root of the tree "
        f"of {size} events\n"
    )
    other = inclusion_of(log, position + 1, size)
    out = failed(verify("inclusion", files.json({**other, "position": position}), document))
    assert out.startswith(f"failed: the leaf is not the event at position {position}: it begins ")
    wrong_root = {**proof, "root_hash": mth(log.canonicals[: size - 1]).hex()}
    out = failed(verify("inclusion", files.json(wrong_root), document))
    assert out.startswith(f"failed: the proof's root_hash {wrong_root['root_hash']} is not the checkpoint's")
    smaller = inclusion_of(log, position, size - 1)
    out = failed(verify("inclusion", files.json(smaller), document))
    assert out == (
        f"failed: the proof is for a tree of {size - 1} events, the checkpoint's tree_size is {size}\n"
    )
    for index in range(len(proof["audit_path"])):
        changed = list(proof["audit_path"])
        changed[index] = ("1" if changed[index][0] == "0" else "0") + changed[index][1:]
        out = failed(verify("inclusion", files.json({**proof, "audit_path": changed}), document))
        assert "the audit_path does not lead" in out
    out = failed(verify("inclusion", files.json({**proof, "audit_path": proof["audit_path"][:-1]}), document))
    assert "the audit_path does not lead" in out


def test_an_inclusion_proof_needs_a_checkpoint_with_a_root(log: Log, files: Files, verify: Verify) -> None:
    old = files.json(
        {
            "ledger_id": log.ledger_id,
            "position": log.size,
            "hash": log.chain_hashes[log.size],
            "recorded_at": log.recorded_at[-1],
        }
    )
    err = invalid(verify("inclusion", files.json(inclusion_of(log, 1, log.size)), old))
    assert err == f"error: {old}: a checkpoint of the chain only has no root_hash: it cannot check a proof\n"


# Consistency proofs.


def test_a_consistency_proof_between_checkpoints_of_every_pair_of_sizes_verifies(
    log: Log, files: Files, verify: Verify
) -> None:
    for second in range(1, log.size + 1):
        new = files.json(checkpoint_of(log, second))
        for first in range(1, second + 1):
            old = files.json(checkpoint_of(log, first))
            out = ok(verify("consistency", files.json(consistency_of(log, first, second)), old, new))
            assert out == (
                f"ok: the tree of {second} events (root {mth(log.canonicals[:second]).hex()}) extends the "
                f"tree of {first} events (root {mth(log.canonicals[:first]).hex()}) of ledger "
                f"{log.ledger_id}; {old} unsigned, {new} unsigned\n"
            )


def test_a_consistency_proof_with_swapped_checkpoints_or_a_wrong_proof_fails(
    log: Log, files: Files, verify: Verify
) -> None:
    first, second = 5, log.size
    proof = consistency_of(log, first, second)
    old, new = files.json(signed(checkpoint_of(log, first))), files.json(signed(checkpoint_of(log, second)))
    key = files.key()
    out = ok(verify("consistency", files.json(proof), old, new, "--public-key", key))
    assert out.endswith(f"{old} signed by key {KEY_ID}, {new} signed by key {KEY_ID}\n")
    out = failed(verify("consistency", files.json(proof), new, old))
    assert out == f"failed: the proof's first tree has {first} events, the checkpoint {new} has {second}\n"
    for index in range(len(proof["proof"])):
        changed = list(proof["proof"])
        changed[index] = ("1" if changed[index][0] == "0" else "0") + changed[index][1:]
        out = failed(verify("consistency", files.json({**proof, "proof": changed}), old, new))
        assert out == (
            f"failed: the proof does not show that the tree of {second} events extends the tree of {first}\n"
        )
    out = failed(verify("consistency", files.json({**proof, "proof": proof["proof"][1:]}), old, new))
    assert "the proof does not show" in out
    other_root = {**proof, "first_root": mth(log.canonicals[:4]).hex()}
    out = failed(verify("consistency", files.json(other_root), old, new))
    assert out.startswith(
        f"failed: the proof's first_root {other_root['first_root']} is not the root_hash of"
    )
    forged = files.json({**signed(checkpoint_of(log, second)), "root_hash": mth(log.canonicals[:4]).hex()})
    out = failed(verify("consistency", files.json(proof), old, forged, "--public-key", key))
    assert out == f"failed: checkpoint {forged}: the signature does not match the checkpoint\n"
    elsewhere = files.json(checkpoint_of(log, second, ledger_id="another-ledger"))
    out = failed(verify("consistency", files.json(proof), old, elsewhere))
    assert out.startswith("failed: the checkpoints are of two ledgers: ")


# Inputs that are not what they should be.


def unknown_key_type() -> bytes:
    """A PEM public key whose algorithm OpenSSL does not know (the Ed25519 OID 1.3.101.112 made .121)."""
    der = SECRET.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    unknown = der.replace(bytes.fromhex("06032b6570"), bytes.fromhex("06032b6579"))
    return b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(unknown) + b"-----END PUBLIC KEY-----\n"


def x25519_key() -> bytes:
    return (
        X25519PrivateKey.from_private_bytes(bytes(32))
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def test_inputs_that_cannot_be_read_or_are_not_json_or_miss_a_field_exit_2(
    log: Log, files: Files, verify: Verify
) -> None:
    export = files.bytes(log.export)
    checkpoint = checkpoint_of(log, log.size)
    good = files.json(checkpoint)
    missing = files.directory / "missing.json"
    cases: list[tuple[tuple[str | Path, ...], str]] = [
        (("export", export, missing), f"error: {missing}: cannot be read: "),
        (("export", missing, good), f"error: {missing}: cannot be read: "),
        (("export", export, files.bytes(b"{not json")), ": not JSON: "),
        (("export", export, files.json([1, 2])), ": a checkpoint is a JSON object"),
        (
            ("export", export, files.json({**checkpoint, "tree_size": None})),
            ": tree_size: expected int, got null",
        ),
        (
            ("export", export, files.json({**checkpoint, "root_hash": "AB" * 32})),
            ": root_hash: expected lowercase",
        ),
        (("export", export, good, "--public-key", files.bytes(b"not a key")), ": not an Ed25519 public key"),
        (
            ("export", export, good, "--public-key", files.bytes(unknown_key_type())),
            ": not an Ed25519 public key",
        ),
        (
            ("export", export, good, "--public-key", files.bytes(x25519_key())),
            ": the public key is not an Ed25519",
        ),
        (("export", files.bytes(b""), good), ": line 1: not an export header"),
        (("inclusion", files.bytes(b"[]"), good), ": not a JSON object"),
    ]
    proof = inclusion_of(log, 2, log.size)
    for field, value, named in (
        ("position", None, "position"),
        ("tree_size", "12", "tree_size"),
        ("leaf_hash", "00", "leaf_hash"),
        ("root_hash", None, "root_hash"),
        ("audit_path", "x", "audit_path"),
        ("audit_path", ["0" * 64, "zz"], "audit_path[1]"),
        ("leaf", None, "leaf"),
        ("leaf", "not json", "leaf"),
    ):
        document = files.json({**proof, field: value})
        cases.append((("inclusion", document, good), f"error: {document}: {named}: "))
    consistency = consistency_of(log, 2, log.size)
    for field, value, named in (
        ("first", None, "first"),
        ("first", 0, "first"),
        ("second", -1, "second"),
        ("first_root", 7, "first_root"),
        ("proof", None, "proof"),
        ("proof", ["g" * 64], "proof[0]"),
    ):
        document = files.json({**consistency, field: value})
        cases.append((("consistency", document, good, good), f"error: {document}: {named}: "))
    for arguments, expected in cases:
        err = invalid(verify(*arguments))
        assert expected in err, (arguments, err)


def test_a_usage_error_is_one_line_on_stderr_with_exit_2(verify: Verify) -> None:
    for arguments, help_of in (
        ((), "ledger-verify"),
        (("audit", "x"), "ledger-verify"),
        (("export",), "ledger-verify export"),
        (("export", "a", "b", "--public-key"), "ledger-verify export"),
    ):
        err = invalid(verify(*arguments))
        assert err.endswith(f"(see {help_of} --help)\n"), err


# The Merkle half of a big export, in this process and in the second one.


def synthetic_export(size: int) -> tuple[bytes, list[bytes], list[bytes]]:
    """An export of `size` made-up events: (the file, the canonical bytes, the chain hashes from 0)."""
    canonicals = [
        b'{"position":%d,"recorded_at":"2025-01-01T00:00:00.%06dZ","type":"test.made","n":"%s"}'
        % (position, position % 1_000_000, b"x" * (position % 50))
        for position in range(1, size + 1)
    ]
    hashes = [bytes(32)]
    lines = []
    for canonical in canonicals:
        hashes.append(hashlib.sha256(hashes[-1] + canonical).digest())
        lines.append(
            canonical[:-1]
            + b',"hash":"%s","prev_hash":"%s"}\n' % (hashes[-1].hex().encode(), hashes[-2].hex().encode())
        )
    header = json.dumps(
        {
            "format": "cadre-ledger-export/1",
            "ledger_id": "synthetic",
            "position": size,
            "head_hash": hashes[-1].hex(),
        }
    )
    return header.encode() + b"\n" + b"".join(lines), canonicals, hashes


SYNTHETIC_SIZE = 2 * export_module.CHUNK_LEAVES + 37


@pytest.fixture(scope="module")
def synthetic() -> tuple[bytes, list[bytes], list[bytes]]:
    return synthetic_export(SYNTHETIC_SIZE)


def synthetic_checkpoint(canonicals: list[bytes], hashes: list[bytes], size: int) -> bytes:
    return json.dumps(
        {
            "ledger_id": "synthetic",
            "tree_size": size,
            "root_hash": mth(canonicals[:size]).hex(),
            "chain_hash": hashes[size].hex(),
            "recorded_at": f"2025-01-01T00:00:00.{size % 1_000_000:06d}Z" if size else "",
        }
    ).encode()


def check_file(path: Path, checkpoint: CheckpointDocument, *, parallel: bool) -> ExportReport:
    with path.open("rb") as stream:
        return export_module.verify_export(stream, checkpoint, parallel=parallel)


@pytest.mark.parametrize("parallel", [False, True])
def test_the_tree_of_a_big_export_is_the_naive_mth_at_chunk_boundaries(
    synthetic: tuple[bytes, list[bytes], list[bytes]], files: Files, parallel: bool
) -> None:
    content, canonicals, hashes = synthetic
    export = files.bytes(content)
    chunk = export_module.CHUNK_LEAVES
    for size in (0, 1, chunk - 1, chunk, chunk + 1, 2 * chunk, SYNTHETIC_SIZE):
        checkpoint = parse_checkpoint(synthetic_checkpoint(canonicals, hashes, size))
        report = check_file(export, checkpoint, parallel=parallel)
        assert report.ok, (size, report.failure)
        assert report.verified_through == SYNTHETIC_SIZE
        other = canonicals[: size + 1] if size < SYNTHETIC_SIZE else canonicals[: size - 1]
        forged = dataclasses.replace(checkpoint, root_hash=mth(other).hex())
        report = check_file(export, forged, parallel=parallel)
        assert report.failure is not None
        assert report.failure.startswith(f"the Merkle tree head of the first {size} events is ")
        assert report.position == (size or None)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("block_size", [7, 100, 4093, export_module.BLOCK_SIZE])
def test_lines_cut_across_blocks_are_checked_whole(
    synthetic: tuple[bytes, list[bytes], list[bytes]],
    files: Files,
    monkeypatch: pytest.MonkeyPatch,
    parallel: bool,
    block_size: int,
) -> None:
    """Blocks far smaller than a line, about a line, many lines: the same verdicts, in either process."""
    monkeypatch.setattr(export_module, "BLOCK_SIZE", block_size)
    content, canonicals, hashes = synthetic
    checkpoint = parse_checkpoint(synthetic_checkpoint(canonicals, hashes, export_module.CHUNK_LEAVES + 3))
    report = check_file(files.bytes(content), checkpoint, parallel=parallel)
    assert report.ok and report.verified_through == SYNTHETIC_SIZE, report.failure
    for position in (1, export_module.CHUNK_LEAVES + 5, SYNTHETIC_SIZE):
        altered = content.replace(b'"position":%d,' % position, b'"position":%d ,' % position, 1)
        report = check_file(files.bytes(altered), checkpoint, parallel=parallel)
        assert (report.line, report.position) == (position + 1, position)
        assert report.verified_through == position - 1
        assert report.failure == 'it does not begin with {"position":<number>, (it was altered)'
    forged = dataclasses.replace(checkpoint, root_hash=mth(canonicals[:3]).hex())
    report = check_file(files.bytes(content), forged, parallel=parallel)
    assert report.failure is not None and report.failure.startswith("the Merkle tree head of the first")


def test_a_real_export_read_one_byte_at_a_time_verifies(
    log: Log, files: Files, verify: Verify, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_module, "BLOCK_SIZE", 1)
    ok(verify("export", files.bytes(log.export), files.json(checkpoint_of(log, log.early_size))))


def test_a_second_process_that_fails_leaves_the_check_to_this_one(
    synthetic: tuple[bytes, list[bytes], list[bytes]], files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    content, canonicals, hashes = synthetic
    export = files.bytes(content)
    checkpoint = parse_checkpoint(synthetic_checkpoint(canonicals, hashes, SYNTHETIC_SIZE - 1))
    for broken in ("import sys; sys.exit(3)", "print('1 ' + '0' * 64)", "print('nonsense')"):
        monkeypatch.setattr(export_module, "_WORKER_CODE", broken)
        report = check_file(export, checkpoint, parallel=True)
        assert report.ok, report.failure
        forged = dataclasses.replace(checkpoint, root_hash=mth(canonicals[:3]).hex())
        assert not check_file(export, forged, parallel=True).ok


def test_a_stream_that_is_not_a_file_is_checked_in_this_process(
    synthetic: tuple[bytes, list[bytes], list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    content, canonicals, hashes = synthetic
    monkeypatch.setattr(export_module, "_WORKER_CODE", "raise SystemExit('must not run')")
    checkpoint = parse_checkpoint(synthetic_checkpoint(canonicals, hashes, SYNTHETIC_SIZE))
    assert export_module.verify_export(io.BytesIO(content), checkpoint, parallel=True).ok


def test_the_command_uses_a_second_process_for_a_big_export_file(
    synthetic: tuple[bytes, list[bytes], list[bytes]],
    files: Files,
    verify: Verify,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    content, canonicals, hashes = synthetic
    started: list[object] = []
    start = export_module._RemoteTree.start

    def counted(stream: Any, count: int) -> object:
        started.append(remote := start(stream, count))
        return remote

    monkeypatch.setattr(export_module, "PARALLEL_MIN_BYTES", len(content))
    monkeypatch.setattr(export_module._RemoteTree, "start", staticmethod(counted))
    checkpoint = files.bytes(synthetic_checkpoint(canonicals, hashes, SYNTHETIC_SIZE), "checkpoint.json")
    ok(verify("export", files.bytes(content), checkpoint))
    assert len(started) == 1 and started[0] is not None
    monkeypatch.setattr(export_module, "PARALLEL_MIN_BYTES", len(content) + 1)
    ok(verify("export", files.bytes(content), checkpoint))
    assert len(started) == 1  # below the threshold: this process alone


# The installed script, and what it imports.


def test_the_installed_console_script_verifies_an_export(log: Log, files: Files) -> None:
    script = Path(sys.executable).parent / "ledger-verify"
    export, checkpoint = files.bytes(log.export), files.json(signed(checkpoint_of(log, log.size)))
    done = subprocess.run(
        [script, "export", export, checkpoint, "--public-key", files.key()],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith(
        f"ok: export of ledger {log.ledger_id} verified through position {log.size};"
    )
    done = subprocess.run(
        [script, "export", export, files.bytes(b"{}")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and done.stdout == "" and done.stderr.startswith("error: ")


def imported_by(code: str) -> list[str]:
    """The modules loaded after running `code` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def forbidden(modules: list[str]) -> list[str]:
    return [
        name
        for name in modules
        if name.split(".")[0] in FORBIDDEN_MODULES
        or (name.startswith("ledger") and not name.startswith("ledger_verify"))
    ]


def test_the_verifier_imports_nothing_of_the_ledger(log: Log, files: Files) -> None:
    assert forbidden(imported_by("import ledger_verify.cli")) == []
    export = files.bytes(log.export)
    checkpoint = files.json(signed(checkpoint_of(log, log.size)))
    proof = files.json(inclusion_of(log, 3, log.size))
    export_command = ["export", str(export), str(checkpoint), "--public-key", str(files.key())]
    inclusion_command = ["inclusion", str(proof), str(checkpoint)]
    run = (
        "import contextlib, io\nfrom ledger_verify.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main({export_command!r}) == 0\n"
        f"    assert main({inclusion_command!r}) == 0"
    )
    modules = imported_by(run)
    assert "cryptography" in modules
    assert forbidden(modules) == []
