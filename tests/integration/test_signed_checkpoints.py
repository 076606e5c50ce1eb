"""Signed tree heads through the shell: `ledger keys signing create|list|retire`, `ledger checkpoint` signed
by a configured key, `ledger verify --against` a signed, an unsigned and a chain-only checkpoint.

Signatures are checked here with `cryptography` and the documented byte string written out in the test
(docs/audit.md), not with the ledger's own check.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from typer.testing import CliRunner

from ledger import Ledger
from ledger.cli import app
from tests.conftest import fixed_clock, registration
from tests.support import raw_sql

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def signed_text(document: dict[str, object]) -> bytes:
    """The byte string of docs/audit.md, written out again."""
    return (
        "cadre-ledger tree head v1\n"
        f"ledger_id {document['ledger_id']}\n"
        f"tree_size {document['tree_size']}\n"
        f"root_hash {document['root_hash']}\n"
        f"chain_hash {document['chain_hash']}\n"
        f"recorded_at {document['recorded_at']}\n"
        f"key_id {document['key_id']}\n"
    ).encode()


@pytest.fixture
def database(store_url: str) -> str:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration("S1"), registration("S2")])
    return store_url


def create_key(database: str, path: Path) -> str:
    code, stdout, stderr = run("keys", "signing", "create", "--output", str(path), "-d", database)
    assert code == 0, stderr
    return stdout.split()[2]  # "signing key <id> published …"


def test_a_key_pair_is_made_and_only_its_public_half_enters_the_log(database: str, tmp_path: Path) -> None:
    key_file = tmp_path / "signing.pem"
    key_id = create_key(database, key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    private = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    raw_public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    import hashlib

    assert key_id == hashlib.sha256(raw_public).hexdigest()[:16]
    public = serialization.load_pem_public_key((tmp_path / "signing.pem.pub").read_bytes())
    assert isinstance(public, Ed25519PublicKey)
    raw_private = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    states = b"".join(bytes(row[0]) for row in raw_sql(database, "SELECT state FROM {events}"))
    assert raw_private.hex().encode() not in states and raw_private not in states
    published = [json.loads(bytes(row[0])) for row in raw_sql(database, "SELECT state FROM {events}")]
    (event,) = [e for e in published if e["type"] == "signing_key.published"]
    assert (event["key_id"], event["public_key"], event["algorithm"]) == (key_id, raw_public.hex(), "ed25519")
    code, stdout, _ = run("keys", "signing", "list", "-f", "json", "-d", database)
    assert code == 0 and [k["key_id"] for k in json.loads(stdout)] == [key_id]
    code, _stdout, _stderr = run("verify", "-d", database)
    assert code == 0, "the key's event is chained like any other"


def test_an_existing_key_file_is_never_overwritten(database: str, tmp_path: Path) -> None:
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(b"precious")
    code, _stdout, stderr = run("keys", "signing", "create", "--output", str(key_file), "-d", database)
    assert code == 2 and "never overwritten" in stderr
    assert key_file.read_bytes() == b"precious"
    assert not any(b"signing_key" in bytes(row[0]) for row in raw_sql(database, "SELECT state FROM {events}"))


def test_a_checkpoint_is_signed_and_verifies(database: str, tmp_path: Path) -> None:
    key_file = tmp_path / "signing.pem"
    key_id = create_key(database, key_file)
    code, stdout, stderr = run("checkpoint", "-d", database, env={"LEDGER_SIGNING_KEY_FILE": str(key_file)})
    assert code == 0, stderr
    document = json.loads(stdout)
    assert list(document) == [
        "ledger_id",
        "tree_size",
        "root_hash",
        "chain_hash",
        "recorded_at",
        "key_id",
        "signature",
    ]
    assert document["key_id"] == key_id and document["tree_size"] == 4
    public = serialization.load_pem_public_key((tmp_path / "signing.pem.pub").read_bytes())
    assert isinstance(public, Ed25519PublicKey)
    public.verify(bytes.fromhex(document["signature"]), signed_text(document))
    checkpoint_file = tmp_path / "checkpoint.json"
    checkpoint_file.write_text(stdout)
    code, stdout, stderr = run("verify", "--against", str(checkpoint_file), "-d", database)
    assert code == 0, stderr
    assert f"signed by key {key_id}" in stdout


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tree_size", 3),
        ("root_hash", "0" * 64),
        ("chain_hash", "0" * 64),
        ("recorded_at", "2020-01-01T00:00:00.000000Z"),
        ("ledger_id", "00000000-0000-4000-8000-000000000000"),
        ("signature", "0" * 128),
    ],
)
def test_a_signed_checkpoint_changed_in_any_field_fails(
    database: str, tmp_path: Path, field: str, value: object
) -> None:
    key_file = tmp_path / "signing.pem"
    create_key(database, key_file)
    _code, stdout, _stderr = run("checkpoint", "--signing-key", str(key_file), "-d", database)
    document = json.loads(stdout)
    public = serialization.load_pem_public_key((tmp_path / "signing.pem.pub").read_bytes())
    assert isinstance(public, Ed25519PublicKey)
    document[field] = value
    with pytest.raises(InvalidSignature):
        public.verify(bytes.fromhex(document["signature"]), signed_text(document))
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(document))
    code, _stdout, stderr = run("verify", "--against", str(changed), "-d", database)
    assert code == 1, "a changed checkpoint does not verify"
    assert "verification failed" in stderr


def test_a_recorded_at_changed_alone_fails(database: str, tmp_path: Path) -> None:
    """The checkpoint's recorded_at is held to the log's recording time at its size (and signed)."""
    key_file = tmp_path / "signing.pem"
    create_key(database, key_file)
    _code, stdout, _stderr = run("checkpoint", "--signing-key", str(key_file), "-d", database)
    document = json.loads(stdout)
    document["recorded_at"] = "2020-01-01T00:00:00.000000Z"
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(document))
    code, _stdout, stderr = run("verify", "--against", str(changed), "-d", database)
    assert code == 1 and "recorded_at" in stderr


def test_a_key_the_log_does_not_publish_signs_nothing(database: str, tmp_path: Path) -> None:
    stray = tmp_path / "stray.pem"
    stray.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    code, stdout, stderr = run("checkpoint", "--signing-key", str(stray), "-d", database)
    assert code == 2 and stdout == ""
    assert "signing_key_not_published" in stderr


def test_a_retired_key_signs_nothing_but_its_checkpoints_still_verify(database: str, tmp_path: Path) -> None:
    key_file = tmp_path / "signing.pem"
    key_id = create_key(database, key_file)
    _code, stdout, _stderr = run("checkpoint", "--signing-key", str(key_file), "-d", database)
    old = tmp_path / "old.json"
    old.write_text(stdout)
    code, _stdout, stderr = run("keys", "signing", "retire", key_id, "-d", database)
    assert code == 0, stderr
    code, _stdout, stderr = run("checkpoint", "--signing-key", str(key_file), "-d", database)
    assert code == 2 and "signing_key_retired" in stderr
    code, _stdout, stderr = run("verify", "--against", str(old), "-d", database)
    assert code == 0, stderr
    code, _stdout, stderr = run("keys", "signing", "retire", "0123456789abcdef", "-d", database)
    assert code == 2 and "no signing key 0123456789abcdef" in stderr


def test_a_signature_by_a_key_of_another_ledger_fails(database: str, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    key_file = tmp_path / "other.pem"
    create_key(other, key_file)
    _code, stdout, _stderr = run("checkpoint", "--signing-key", str(key_file), "-d", other)
    document = json.loads(stdout)
    # Re-sign this ledger's head with the other ledger's key: a valid signature, an unknown key.
    _code, mine, _stderr = run("checkpoint", "-d", database)
    forged = json.loads(mine) | {"key_id": document["key_id"]}
    private = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    forged["signature"] = private.sign(signed_text(forged)).hex()
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged))
    code, _stdout, stderr = run("verify", "--against", str(path), "-d", database)
    assert code == 1 and "does not publish" in stderr


def test_unsigned_and_chain_only_checkpoints_still_verify(database: str, tmp_path: Path) -> None:
    _code, stdout, _stderr = run("checkpoint", "-d", database)
    unsigned = json.loads(stdout)
    assert unsigned["key_id"] is None and unsigned["signature"] is None
    (tmp_path / "unsigned.json").write_text(stdout)
    # The shape of checkpoints taken before the tree existed: position and hash of the chain only.
    chain_only = {
        "ledger_id": unsigned["ledger_id"],
        "position": unsigned["tree_size"],
        "hash": unsigned["chain_hash"],
        "recorded_at": unsigned["recorded_at"],
    }
    (tmp_path / "chain_only.json").write_text(json.dumps(chain_only))
    for name in ("unsigned.json", "chain_only.json"):
        code, stdout, stderr = run("verify", "--against", str(tmp_path / name), "-d", database)
        assert code == 0 and "extends the checkpoint" in stdout, stderr
    # The newest event cut off, with its chain and tree rows: consistent alone, short of either checkpoint.
    kept = unsigned["tree_size"] - 1
    raw_sql(database, "DELETE FROM {events} WHERE {pos} > ?", (kept,))
    raw_sql(database, "DELETE FROM ledger_chain WHERE position > ?", (kept,))
    raw_sql(database, "DELETE FROM ledger_merkle WHERE position > ?", (kept,))
    for name in ("unsigned.json", "chain_only.json"):
        code, _stdout, stderr = run("verify", "--against", str(tmp_path / name), "-d", database)
        assert code == 1 and "truncated" in stderr


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"not json", "not JSON"),
        (b'{"ledger_id": "x", "tree_size": "4", "recorded_at": ""}', "tree_size"),
        (
            b'{"ledger_id": "x", "tree_size": 4, "root_hash": "AB", "chain_hash": "", "recorded_at": ""}',
            "root_hash",
        ),
        (b'{"ledger_id": "x", "position": 4, "hash": "00", "recorded_at": "", "extra": 1}', "extra"),
    ],
)
def test_a_file_that_is_not_a_checkpoint_is_refused_naming_the_field(
    database: str, tmp_path: Path, content: bytes, said: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    code, _stdout, stderr = run("verify", "--against", str(path), "-d", database)
    assert code == 2 and said in stderr


def test_a_signature_by_a_retired_key_over_a_tree_that_holds_its_retirement_fails(
    database: str, tmp_path: Path
) -> None:
    """The ledger signs only with a key published and not retired, so a checkpoint whose tree holds the
    key's retirement was not signed by the ledger, whoever holds the (leaked) private key."""
    key_file = tmp_path / "signing.pem"
    key_id = create_key(database, key_file)
    run("keys", "signing", "retire", key_id, "-d", database)
    _code, stdout, _stderr = run("checkpoint", "-d", database)  # unsigned, at the head after the retirement
    document = json.loads(stdout) | {"key_id": key_id}
    private = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    document["signature"] = private.sign(signed_text(document)).hex()
    path = tmp_path / "late.json"
    path.write_text(json.dumps(document))
    code, _stdout, stderr = run("verify", "--against", str(path), "-d", database)
    assert code == 1 and "retired at position" in stderr
