"""Checkpoint signing keys: an Ed25519 private key in a file, its public half published into the log.

The operator makes a key pair with `ledger keys signing create --output FILE`: the private key is written
to FILE (PKCS #8 PEM, mode 0600, never over an existing file) and never enters the database; the public key
is written beside it (FILE.pub, SubjectPublicKeyInfo PEM, for auditors) and published into the log as a
`signing_key.published` event in the stream `$signing`, so that which keys the ledger signs with, and since
when, is itself chained. `LEDGER_SIGNING_KEY_FILE` (or `--signing-key`) names the file the CLI and the
server sign checkpoints with; a key that the log does not publish, or that it retired, signs nothing.

What is signed, and how an auditor checks it: `ledger_verify.checkpoint` (the byte string), docs/audit.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.domain.cadre import SIGNING_STREAM
from ledger.domain.errors import InvalidInput, NotFound
from ledger.domain.events import SigningKeyPublished, SigningKeyRetired, Source
from ledger_verify.checkpoint import key_id_of

if TYPE_CHECKING:
    from ledger.ledger import Ledger

__all__ = [
    "SIGNING_KEY_FILE_ENV",
    "SIGNING_SYSTEM",
    "PublishedKey",
    "Signer",
    "SigningKeys",
    "create_key_file",
]

SIGNING_SYSTEM: Final = "ledger.signing"
SIGNING_KEY_FILE_ENV: Final = "LEDGER_SIGNING_KEY_FILE"
_PRIVATE_KEY_MODE: Final = 0o600


class Signer:
    """A private signing key, read from its file."""

    def __init__(self, private_key: Ed25519PrivateKey, path: Path) -> None:
        self._private_key = private_key
        self.path = path
        self.public_key = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id_of(self.public_key)

    @classmethod
    def from_file(cls, path: Path) -> Signer:
        """The key in `path`; InvalidInput naming the file when it cannot be read or is no Ed25519 key."""
        try:
            data = path.read_bytes()
        except OSError as error:
            raise InvalidInput(
                f"cannot read the signing key {path}: {error.strerror or error}",
                field=SIGNING_KEY_FILE_ENV,
                rule="signing_key_unreadable",
            ) from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as error:
            raise InvalidInput(
                f"{path} is not an unencrypted PEM private key: {error}",
                field=SIGNING_KEY_FILE_ENV,
                rule="signing_key_invalid",
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidInput(
                f"{path} holds a {type(key).__name__}, not an Ed25519 key",
                field=SIGNING_KEY_FILE_ENV,
                rule="signing_key_invalid",
            )
        return cls(key, path)

    def sign(self, message: bytes) -> bytes:
        return self._private_key.sign(message)

    def public_pem(self) -> bytes:
        return self._private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def create_key_file(path: Path) -> Signer:
    """Make a new key pair: the private key into `path` (which must not exist), the public key into
    `path.pub`. InvalidInput naming the file if either exists or cannot be written."""
    public_path = path.with_name(path.name + ".pub")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = Signer(key, path)
    try:
        # O_EXCL: never replace a key that may have signed checkpoints already.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE_KEY_MODE)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(private_pem)
        with public_path.open("xb") as handle:
            handle.write(signer.public_pem())
    except FileExistsError as error:
        raise InvalidInput(
            f"{error.filename} exists: a signing key file is never overwritten; choose another path",
            field="--output",
            rule="signing_key_file_exists",
        ) from None
    except OSError as error:
        raise InvalidInput(
            f"cannot write {error.filename or path}: {error.strerror or error}",
            field="--output",
            rule="signing_key_unwritable",
        ) from None
    return signer


@dataclass(frozen=True, slots=True)
class PublishedKey:
    """A signing key as the log records it."""

    key_id: str
    public_key: str
    published_at: datetime
    position: int
    retired_at: datetime | None = None
    retired_position: int | None = None


class SigningKeys:
    """The signing keys of one ledger, read from and recorded into its `$signing` stream."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def published(self) -> dict[str, PublishedKey]:
        """Every key the log publishes, by id, with its retirement if any."""
        keys: dict[str, PublishedKey] = {}
        for position, _recorded_at, event in self._ledger.stream_records(SIGNING_STREAM):
            if isinstance(event, SigningKeyPublished):
                keys[event.key_id] = PublishedKey(
                    event.key_id, event.public_key, event.published_at, position
                )
            elif isinstance(event, SigningKeyRetired) and event.key_id in keys:
                published = keys[event.key_id]
                keys[event.key_id] = PublishedKey(
                    published.key_id,
                    published.public_key,
                    published.published_at,
                    published.position,
                    event.retired_at,
                    position,
                )
        return keys

    def publish(self, signer: Signer, *, by: str) -> PublishedKey:
        """Record the signer's public key in the log (a replay if it is there already)."""
        now = self._ledger.now()
        self._ledger.record_own(
            [
                SigningKeyPublished(
                    effective_on=self._ledger.today(),
                    source=Source(system=SIGNING_SYSTEM, key=f"published:{signer.key_id}"),
                    key_id=signer.key_id,
                    algorithm="ed25519",
                    public_key=signer.public_key.hex(),
                    published_at=now,
                )
            ],
            posted_by=by,
        )
        return self.published()[signer.key_id]

    def retire(self, key_id: str, *, by: str) -> PublishedKey:
        """Record that `key_id` signs no more checkpoints (NotFound if the log never published it)."""
        if key_id not in self.published():
            raise NotFound(f"no signing key {key_id} is published in this ledger's log")
        self._ledger.record_own(
            [
                SigningKeyRetired(
                    effective_on=self._ledger.today(),
                    source=Source(system=SIGNING_SYSTEM, key=f"retired:{key_id}"),
                    key_id=key_id,
                    retired_at=self._ledger.now(),
                )
            ],
            posted_by=by,
        )
        return self.published()[key_id]

    def usable(self, signer: Signer) -> PublishedKey:
        """The published record of `signer`'s key; InvalidInput if the log does not publish it or retired
        it (a checkpoint signed by it could not be verified against the log's keys)."""
        published = self.published().get(signer.key_id)
        if published is None:
            raise InvalidInput(
                f"the signing key in {signer.path} (key {signer.key_id}) is not published in this ledger's "
                "log: make keys with `ledger keys signing create`, which publishes them",
                field=SIGNING_KEY_FILE_ENV,
                rule="signing_key_not_published",
            )
        if published.retired_at is not None:
            raise InvalidInput(
                f"the signing key {signer.key_id} was retired at {published.retired_at.isoformat()}: "
                "make a new one with `ledger keys signing create`",
                field=SIGNING_KEY_FILE_ENV,
                rule="signing_key_retired",
            )
        return published
