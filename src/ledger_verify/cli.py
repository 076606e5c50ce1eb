"""`ledger-verify`: an auditor's check of an export or a proof against checkpoints, alone.

    ledger-verify export EXPORT.jsonl CHECKPOINT.json [--public-key KEY]
    ledger-verify inclusion PROOF.json CHECKPOINT.json [--public-key KEY]
    ledger-verify consistency PROOF.json OLD.json NEW.json [--public-key KEY]

No database, no server, nothing of the ledger: the standard library and `cryptography` (Ed25519). Exit 0
when everything holds, 1 when something fails verification, 2 when an input cannot be read or is not what
it should be; one line says which — `ok: …` or `failed: …` on stdout, `error: …` on stderr — naming what
failed. With `--public-key`, every checkpoint given must be signed by that key; without it a signature is
not checked, and the ok line says so.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import Any, Final, NoReturn

from ledger_verify.checkpoint import (
    CheckpointDocument,
    CheckpointError,
    parse_checkpoint,
    public_key_from_text,
    strict_json,
    verify_signature,
)
from ledger_verify.export import ExportError, verify_export
from ledger_verify.merkle import leaf_hash, verify_consistency, verify_inclusion

__all__ = ["main"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_INVALID: Final = 2
# Checkpoints, proofs and keys are small documents; an export is streamed, never read whole.
DOCUMENT_LENGTH_MAX: Final = 1 << 20
_SHOWN_MAX: Final = 80
_HEX64: Final = re.compile(r"[0-9a-f]{64}")


class _Invalid(Exception):
    """Raised when an input cannot be read or is not what it should be (exit 2)."""


class _Failed(Exception):
    """Raised when verification fails (exit 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, like every other verdict (argparse prints the usage first).
        self.exit(EXIT_INVALID, f"error: {message} (see {self.prog} --help)\n")


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 1] + "…"


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            raw = file.read(DOCUMENT_LENGTH_MAX + 1)
    except OSError as error:
        raise _Invalid(f"{path}: cannot be read: {error.strerror or error}") from None
    if len(raw) > DOCUMENT_LENGTH_MAX:
        raise _Invalid(f"{path}: longer than {DOCUMENT_LENGTH_MAX} bytes: not a checkpoint, proof or key")
    return raw


def _checkpoint(path: str) -> CheckpointDocument:
    try:
        return parse_checkpoint(_read(path))
    except CheckpointError as error:
        raise _Invalid(f"{path}: {error}") from None


def _tree_head(path: str) -> CheckpointDocument:
    """A checkpoint with a Merkle tree head (a checkpoint of the chain only cannot check a proof)."""
    checkpoint = _checkpoint(path)
    if checkpoint.root_hash is None:
        raise _Invalid(f"{path}: a checkpoint of the chain only has no root_hash: it cannot check a proof")
    return checkpoint


def _public_key(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        return public_key_from_text(_read(path))
    except CheckpointError as error:
        raise _Invalid(f"{path}: {error}") from None


def _signature(checkpoint: CheckpointDocument, path: str, public_key: bytes | None) -> str:
    """How `checkpoint` is signed, for the ok line; _Failed if `public_key` is given and did not sign it."""
    if public_key is None:
        if checkpoint.key_id is None:
            return "unsigned"
        return f"signed by key {checkpoint.key_id} (signature not checked: no --public-key)"
    try:
        problem = verify_signature(checkpoint, public_key)
    except CheckpointError as error:
        raise _Invalid(f"{path}: {error}") from None
    if problem is not None:
        raise _Failed(f"checkpoint {path}: {problem}")
    return f"signed by key {checkpoint.key_id}"


# Proof documents.


def _document(path: str) -> dict[str, Any]:
    try:
        document = strict_json(_read(path))
    except CheckpointError as error:
        raise _Invalid(f"{path}: {error}") from None
    if not isinstance(document, dict):
        raise _Invalid(f"{path}: not a JSON object")
    return document


def _count(document: dict[str, Any], name: str, path: str) -> int:
    value = document.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Invalid(f"{path}: {name}: expected an integer >= 0, got {_shown(value)}")
    return value


def _hash(value: Any, name: str, path: str) -> bytes:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise _Invalid(f"{path}: {name}: expected 64 lowercase hex digits, got {_shown(value)}")
    return bytes.fromhex(value)


def _hashes(document: dict[str, Any], name: str, path: str) -> list[bytes]:
    values = document.get(name)
    if not isinstance(values, list):
        raise _Invalid(f"{path}: {name}: expected a list of hashes, got {_shown(values)}")
    return [_hash(value, f"{name}[{index}]", path) for index, value in enumerate(values)]


def _leaf(document: dict[str, Any], path: str) -> tuple[str, str, str]:
    """(the leaf, its event's type, its event_id)."""
    leaf = document.get("leaf")
    if not isinstance(leaf, str):
        raise _Invalid(f"{path}: leaf: expected the event's canonical bytes as a string, got {_shown(leaf)}")
    try:
        event = strict_json(leaf.encode())
    except (CheckpointError, UnicodeEncodeError):
        event = None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("type"), str)
        or not isinstance(event.get("event_id"), str)
    ):
        raise _Invalid(f"{path}: leaf: not an event's canonical bytes (a JSON object with type and event_id)")
    return leaf, event["type"], event["event_id"]


# The commands.


def _export(arguments: argparse.Namespace) -> str:
    public_key = _public_key(arguments.public_key)
    checkpoint = _checkpoint(arguments.checkpoint)
    signature = _signature(checkpoint, arguments.checkpoint, public_key)
    try:
        with open(arguments.export, "rb") as stream:
            report = verify_export(stream, checkpoint)
    except OSError as error:
        raise _Invalid(f"{arguments.export}: cannot be read: {error.strerror or error}") from None
    except ExportError as error:
        raise _Invalid(f"{arguments.export}: {error}") from None
    if report.failure is not None:
        where = "" if report.line is None else f"line {report.line} (position {report.position}): "
        raise _Failed(f"{where}{report.failure}")
    size = checkpoint.tree_size
    relation = "extends" if report.verified_through > size else "matches"
    head = (
        f"root {checkpoint.root_hash}"
        if checkpoint.root_hash is not None
        else f"chain hash {checkpoint.chain_hash}; a checkpoint of the chain only, no root"
    )
    return (
        f"export of ledger {report.header.ledger_id} verified through position {report.verified_through}; "
        f"{relation} the checkpoint at {size} ({head}) {signature}"
    )


def _inclusion(arguments: argparse.Namespace) -> str:
    path = arguments.proof
    proof = _document(path)
    position = _count(proof, "position", path)
    tree_size = _count(proof, "tree_size", path)
    claimed_leaf_hash = _hash(proof.get("leaf_hash"), "leaf_hash", path)
    root_hash = _hash(proof.get("root_hash"), "root_hash", path)
    audit_path = _hashes(proof, "audit_path", path)
    leaf, event_type, event_id = _leaf(proof, path)
    public_key = _public_key(arguments.public_key)
    checkpoint = _tree_head(arguments.checkpoint)
    signature = _signature(checkpoint, arguments.checkpoint, public_key)
    if leaf_hash(leaf.encode()) != claimed_leaf_hash:
        raise _Failed("the leaf_hash is not SHA-256(0x00 ‖ leaf): the event's bytes were altered")
    if not leaf.startswith(f'{{"position":{position},'):
        raise _Failed(f"the leaf is not the event at position {position}: it begins {_shown(leaf[:30])}")
    if tree_size != checkpoint.tree_size:
        raise _Failed(
            f"the proof is for a tree of {tree_size} events, the checkpoint's tree_size is "
            f"{checkpoint.tree_size}"
        )
    if root_hash.hex() != checkpoint.root_hash:
        raise _Failed(
            f"the proof's root_hash {root_hash.hex()} is not the checkpoint's, {checkpoint.root_hash}"
        )
    if not verify_inclusion(position - 1, tree_size, claimed_leaf_hash, audit_path, root_hash):
        raise _Failed(
            f"the audit_path does not lead from the leaf at position {position} to the root of the tree "
            f"of {tree_size} events"
        )
    return (
        f"event {event_type} {event_id} at position {position} is in the tree of {tree_size} events of "
        f"ledger {checkpoint.ledger_id} (root {checkpoint.root_hash}) {signature}"
    )


def _consistency(arguments: argparse.Namespace) -> str:
    path = arguments.proof
    proof = _document(path)
    first = _count(proof, "first", path)
    second = _count(proof, "second", path)
    first_root = _hash(proof.get("first_root"), "first_root", path)
    second_root = _hash(proof.get("second_root"), "second_root", path)
    hashes = _hashes(proof, "proof", path)
    if first == 0:
        raise _Invalid(f"{path}: first: a consistency proof starts from a tree of at least one event")
    public_key = _public_key(arguments.public_key)
    old, new = _tree_head(arguments.old), _tree_head(arguments.new)
    old_signature = _signature(old, arguments.old, public_key)
    new_signature = _signature(new, arguments.new, public_key)
    if old.ledger_id != new.ledger_id:
        raise _Failed(
            f"the checkpoints are of two ledgers: {old.ledger_id} ({arguments.old}) and "
            f"{new.ledger_id} ({arguments.new})"
        )
    for size, root, checkpoint, which, name in (
        (first, first_root, old, "first", arguments.old),
        (second, second_root, new, "second", arguments.new),
    ):
        if size != checkpoint.tree_size:
            raise _Failed(
                f"the proof's {which} tree has {size} events, the checkpoint {name} has "
                f"{checkpoint.tree_size}"
            )
        if root.hex() != checkpoint.root_hash:
            raise _Failed(
                f"the proof's {which}_root {root.hex()} is not the root_hash of the checkpoint {name}, "
                f"{checkpoint.root_hash}"
            )
    if not verify_consistency(first, second, first_root, second_root, hashes):
        raise _Failed(f"the proof does not show that the tree of {second} events extends the tree of {first}")
    return (
        f"the tree of {second} events (root {new.root_hash}) extends the tree of {first} events "
        f"(root {old.root_hash}) of ledger {new.ledger_id}; {arguments.old} {old_signature}, "
        f"{arguments.new} {new_signature}"
    )


def _parser() -> _Parser:
    parser = _Parser(
        prog="ledger-verify",
        description="Check a cadre-ledger export or proof against checkpoints, with no database or server. "
        "Exit 0: verified; 1: verification failed; 2: invalid input.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    key_help = (
        "an Ed25519 public key (PEM SubjectPublicKeyInfo, or 64 hex digits) that must have signed every "
        "checkpoint given; without it signatures are not checked"
    )
    export = commands.add_parser(
        "export",
        help="an export against a checkpoint: the chain, the Merkle root, the header",
        description="Recompute the hash chain and the Merkle tree of EXPORT and hold them to CHECKPOINT: "
        "the export must reach the checkpoint (it may go on past it) with the same chain hash and root.",
    )
    export.add_argument("export", metavar="EXPORT.jsonl", help="the output of `ledger export`")
    export.add_argument("checkpoint", metavar="CHECKPOINT.json", help="a checkpoint of the same ledger")
    export.add_argument("--public-key", metavar="KEY", help=key_help)
    export.set_defaults(run=_export)
    inclusion = commands.add_parser(
        "inclusion",
        help="one event's inclusion proof against a checkpoint",
        description="Check that the event in PROOF (its canonical bytes, `leaf`) is at its position in "
        "the Merkle tree whose head CHECKPOINT signs or records.",
    )
    inclusion.add_argument("proof", metavar="PROOF.json", help="an inclusion proof with the event's `leaf`")
    inclusion.add_argument("checkpoint", metavar="CHECKPOINT.json", help="a checkpoint of that tree size")
    inclusion.add_argument("--public-key", metavar="KEY", help=key_help)
    inclusion.set_defaults(run=_inclusion)
    consistency = commands.add_parser(
        "consistency",
        help="a consistency proof between two checkpoints",
        description="Check that the tree of NEW extends the tree of OLD: the log of OLD is a prefix of "
        "the log of NEW, nothing in it changed.",
    )
    consistency.add_argument("proof", metavar="PROOF.json", help="a consistency proof")
    consistency.add_argument("old", metavar="OLD.json", help="the checkpoint of the first (smaller) tree")
    consistency.add_argument("new", metavar="NEW.json", help="the checkpoint of the second tree")
    consistency.add_argument("--public-key", metavar="KEY", help=key_help)
    consistency.set_defaults(run=_consistency)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `ledger-verify` with `argv` (default: the command line); the exit code."""
    try:
        arguments = _parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error (already printed)
        return exit_.code if isinstance(exit_.code, int) else EXIT_INVALID
    try:
        verdict = arguments.run(arguments)
    except _Invalid as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID
    except _Failed as failure:
        print(f"failed: {failure}")
        return EXIT_FAILED
    print(f"ok: {verdict}")
    return EXIT_OK
