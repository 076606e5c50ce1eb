"""Checkpoints (signed tree heads) as an auditor reads them: the document, the signed bytes, the check.

A checkpoint is the head of one ledger's log:

    {"ledger_id", "tree_size", "root_hash", "chain_hash", "recorded_at", "key_id", "signature"}

`tree_size` events, `root_hash` the Merkle tree head MTH(D[0:tree_size]) (RFC 9162), `chain_hash` the hash
chain's value at position `tree_size`, `recorded_at` the recording time of that event (empty for an empty
log); `key_id` and `signature` are null when unsigned. A signature is Ed25519 (RFC 8032) over exactly these
bytes, UTF-8, every line ending in one line feed:

    cadre-ledger tree head v1
    ledger_id <ledger_id>
    tree_size <decimal>
    root_hash <64 lowercase hex>
    chain_hash <64 lowercase hex>
    recorded_at <recorded_at>
    key_id <key_id>

`key_id` is the first 16 hex digits of SHA-256 of the 32-byte raw public key; `signature` is the 64-byte
signature in lowercase hex. Checkpoints taken before the Merkle tree (`{"ledger_id", "position", "hash",
"recorded_at"}`) are still read: they pin the chain only (`root_hash` None).

The standard library and `cryptography` only: `ledger-verify` runs this on an auditor's machine.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "SIGNED_HEADER",
    "CheckpointDocument",
    "CheckpointError",
    "key_id_of",
    "parse_checkpoint",
    "public_key_from_text",
    "signed_bytes",
    "small_order",
    "strict_json",
    "verify_signature",
]

SIGNED_HEADER: Final = "cadre-ledger tree head v1"
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_HEX128: Final = re.compile(r"[0-9a-f]{128}")
_KEY_ID: Final = re.compile(r"[0-9a-f]{16}")


class CheckpointError(ValueError):
    """Raised when a document is not a checkpoint (the message names the field)."""


@dataclass(frozen=True, slots=True)
class CheckpointDocument:
    """A checkpoint as read from its JSON; `root_hash` is None for a checkpoint of the chain only."""

    ledger_id: str
    tree_size: int
    root_hash: str | None
    chain_hash: str
    recorded_at: str
    key_id: str | None = None
    signature: str | None = None

    @property
    def signed(self) -> bool:
        return self.signature is not None


def signed_bytes(  # noqa: PLR0917 - the parameters in the order of the signed lines
    ledger_id: str, tree_size: int, root_hash: str, chain_hash: str, recorded_at: str, key_id: str
) -> bytes:
    """The bytes an Ed25519 signature of a checkpoint covers (see the module docstring)."""
    lines = (
        SIGNED_HEADER,
        f"ledger_id {ledger_id}",
        f"tree_size {tree_size}",
        f"root_hash {root_hash}",
        f"chain_hash {chain_hash}",
        f"recorded_at {recorded_at}",
        f"key_id {key_id}",
    )
    for line in lines:
        if "\n" in line or "\r" in line:
            raise CheckpointError(f"a checkpoint field holds a line break: {line!r}")
    return "".join(line + "\n" for line in lines).encode()


def key_id_of(public_key: bytes) -> str:
    """The id of a 32-byte raw Ed25519 public key."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def _field(document: dict[str, Any], name: str, kind: type) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CheckpointError(f"{name}: expected {kind.__name__}, got {json.dumps(value)}")
    return value


def _hex(document: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = _field(document, name, str)
    if not pattern.fullmatch(value):
        raise CheckpointError(f"{name}: expected lowercase hex, got {value!r}")
    return str(value)


def _text(value: str, where: str) -> None:
    try:
        value.encode()
    except UnicodeEncodeError:
        raise CheckpointError(f"{where}: not Unicode text (a lone surrogate escape)") from None


def _checked_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        _text(key, "a key")
        if key in document:
            raise CheckpointError(f"{key}: a duplicate key: the document is ambiguous (which value counts?)")
        for item in value if isinstance(value, list) else (value,):
            if isinstance(item, str):
                _text(item, key)
        document[key] = value
    return document


def strict_json(raw: bytes) -> Any:
    """JSON as an auditor must read it, or CheckpointError saying why not: each key once (a reader that
    keeps the first of two values and one that keeps the last must not see different documents), every
    string Unicode text (no lone surrogate escapes), numbers of at most 4,300 digits."""
    try:
        return json.loads(raw, object_pairs_hook=_checked_pairs)
    except CheckpointError:
        raise
    except RecursionError:
        raise CheckpointError("not JSON: nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, int digits
        if "digits" in str(error):
            raise CheckpointError("a number of more than 4,300 digits: a huge number is no size") from None
        raise CheckpointError(f"not JSON: {error}") from None


def parse_checkpoint(raw: bytes) -> CheckpointDocument:
    """A checkpoint from its JSON (either shape); CheckpointError naming the field otherwise."""
    document = strict_json(raw)
    if not isinstance(document, dict):
        raise CheckpointError("a checkpoint is a JSON object")
    ledger_id = _field(document, "ledger_id", str)
    recorded_at = _field(document, "recorded_at", str)
    if "position" in document and "tree_size" not in document:  # a checkpoint of the chain only
        unknown = set(document) - {"ledger_id", "position", "hash", "recorded_at"}
        if unknown:
            raise CheckpointError(f"{sorted(unknown)[0]}: not a field of a checkpoint")
        position = _field(document, "position", int)
        if position < 0:
            raise CheckpointError(f"position: expected a position, got {position}")
        return CheckpointDocument(ledger_id, position, None, _hex(document, "hash", _HEX64), recorded_at)
    unknown = set(document) - {
        "ledger_id",
        "tree_size",
        "root_hash",
        "chain_hash",
        "recorded_at",
        "key_id",
        "signature",
    }
    if unknown:
        raise CheckpointError(f"{sorted(unknown)[0]}: not a field of a checkpoint")
    tree_size = _field(document, "tree_size", int)
    if tree_size < 0:
        raise CheckpointError(f"tree_size: expected a size, got {tree_size}")
    key_id = document.get("key_id")
    signature = document.get("signature")
    if (key_id is None) != (signature is None):
        raise CheckpointError("key_id and signature: both or neither")
    return CheckpointDocument(
        ledger_id,
        tree_size,
        _hex(document, "root_hash", _HEX64),
        _hex(document, "chain_hash", _HEX64),
        recorded_at,
        None if key_id is None else _hex(document, "key_id", _KEY_ID),
        None if signature is None else _hex(document, "signature", _HEX128),
    )


def public_key_from_text(text: bytes) -> bytes:
    """The 32 raw bytes of an Ed25519 public key given as PEM (SubjectPublicKeyInfo) or as 64 hex digits."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    stripped = text.strip()
    if _HEX64.fullmatch(stripped.decode("ascii", "replace").lower()):
        raw = bytes.fromhex(stripped.decode())
        if small_order(raw):
            raise CheckpointError("the public key is a point of small order, which any signature fits")
        return raw
    try:
        key = serialization.load_pem_public_key(stripped)
    # UnsupportedAlgorithm: well-formed PEM of a key type OpenSSL does not know (it would escape as a crash).
    except (ValueError, UnsupportedAlgorithm) as error:
        raise CheckpointError(f"not an Ed25519 public key (PEM or 64 hex digits): {error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError("the public key is not an Ed25519 key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if small_order(raw):
        raise CheckpointError("the public key is a point of small order, which any signature fits")
    return raw


# The encodings of the Ed25519 points of small order, without their sign bit (libsodium's blocklist): with
# such a public key one signature fits every message, so it proves nothing about who signed.
_SMALL_ORDER: Final = frozenset(
    bytes.fromhex(text)
    for text in (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    )
)


def small_order(public_key: bytes) -> bool:
    """True for an Ed25519 public key of small order (refused: any signature of it is worthless)."""
    return len(public_key) == 32 and public_key[:31] + bytes([public_key[31] & 0x7F]) in _SMALL_ORDER


def verify_signature(checkpoint: CheckpointDocument, public_key: bytes) -> str | None:
    """None if `checkpoint` is signed by `public_key` (32 raw bytes); else what is wrong, in a phrase."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if checkpoint.signature is None or checkpoint.key_id is None:
        return "the checkpoint is not signed"
    if checkpoint.root_hash is None:
        return "a checkpoint of the chain only carries no signature"
    if small_order(public_key):
        return "the public key is a point of small order, which any signature fits: it proves nothing"
    if key_id_of(public_key) != checkpoint.key_id:
        given = key_id_of(public_key)
        return f"the checkpoint names key {checkpoint.key_id}, the public key given is {given}"
    message = signed_bytes(
        checkpoint.ledger_id,
        checkpoint.tree_size,
        checkpoint.root_hash,
        checkpoint.chain_hash,
        checkpoint.recorded_at,
        checkpoint.key_id,
    )
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(bytes.fromhex(checkpoint.signature), message)
    except InvalidSignature:
        return "the signature does not match the checkpoint"
    return None
