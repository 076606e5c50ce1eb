"""Proofs and signed checkpoints over HTTP: `/v1/audit/proofs/*`, `GET /v1/events/{id}?proof=true`, and a
server that signs its checkpoints with `LEDGER_SIGNING_KEY_FILE`.

Proofs are checked with a naive RFC 9162 model written in tests/contract/test_merkle_tree.py (recompute
the whole tree from the raw rows), signatures with `cryptography` over the documented byte string.
"""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger import Ledger
from ledger.signing import Signer, create_key_file
from tests.api.conftest import Api, open_api
from tests.conftest import fixed_clock
from tests.contract.test_merkle_tree import leaves_of, mth, path, subproof
from tests.integration.test_signed_checkpoints import signed_text


def test_an_inclusion_proof_is_the_naive_models(shared_api: Api) -> None:
    leaves = leaves_of(shared_api.url)
    head = shared_api.ledger.head()
    for position in (1, 2, head):
        for size in (position, head):
            answer = shared_api.get(
                "/v1/audit/proofs/inclusion", "auditor", position=position, tree_size=size
            )
            assert answer.status_code == 200, answer.text
            document = answer.json()
            assert list(document) == ["position", "tree_size", "leaf_hash", "root_hash", "audit_path", "leaf"]
            assert document["root_hash"] == mth(leaves[:size]).hex()
            assert document["audit_path"] == [h.hex() for h in path(position - 1, leaves[:size])]
            assert document["leaf"].encode() == leaves[position - 1]
            assert document["leaf_hash"] == hashlib.sha256(b"\x00" + leaves[position - 1]).hexdigest()
    default = shared_api.get("/v1/audit/proofs/inclusion", "auditor", position=3).json()
    assert default["tree_size"] == head


def test_a_consistency_proof_is_the_naive_models(shared_api: Api) -> None:
    leaves = leaves_of(shared_api.url)
    head = shared_api.ledger.head()
    for first in range(1, head + 1):
        document = shared_api.get("/v1/audit/proofs/consistency", "auditor", first=first).json()
        assert list(document) == ["first", "second", "first_root", "second_root", "proof"]
        assert document["second"] == head
        assert document["first_root"] == mth(leaves[:first]).hex()
        assert document["second_root"] == mth(leaves).hex()
        assert document["proof"] == [h.hex() for h in subproof(first, leaves, True)]


@pytest.mark.parametrize(
    ("route", "params", "field"),
    [
        ("inclusion", {"position": 0}, "position"),
        ("inclusion", {"position": 999}, "position"),
        ("inclusion", {"position": 3, "tree_size": 2}, "position"),
        ("inclusion", {"position": 1, "tree_size": 999}, "tree_size"),
        ("inclusion", {"position": "x"}, "position"),
        ("inclusion", {}, "position"),
        ("consistency", {"first": 0}, "first"),
        ("consistency", {"first": 5, "second": 4}, "first"),
        ("consistency", {"first": 1, "second": 999}, "second"),
        ("consistency", {}, "first"),
    ],
)
def test_a_proof_outside_the_log_is_a_422_naming_the_parameter(
    shared_api: Api, route: str, params: dict[str, object], field: str
) -> None:
    answer = shared_api.get(f"/v1/audit/proofs/{route}", "auditor", **params)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert field in answer.text


def test_an_event_read_with_proof_carries_its_inclusion_proof(shared_api: Api) -> None:
    leaves = leaves_of(shared_api.url)
    logged = shared_api.ledger.events(after=3, limit=1)[0]
    plain = shared_api.get(f"/v1/events/{logged.event.event_id}", "auditor").json()
    assert plain["proof"] is None
    document = shared_api.get(f"/v1/events/{logged.event.event_id}", "auditor", proof="true").json()
    proof = document["proof"]
    assert proof["position"] == document["position"] == 4
    assert proof["tree_size"] == shared_api.ledger.head()
    assert proof["root_hash"] == mth(leaves).hex()
    assert proof["audit_path"] == [h.hex() for h in path(3, leaves)]
    assert shared_api.get(f"/v1/events/{logged.event.event_id}", "reader", proof="true").status_code == 403


@contextmanager
def publishing_api(directory: Path, key_file: Path) -> Iterator[Api]:
    """A seeded API whose ledger publishes a new key in `key_file`, served with LEDGER_SIGNING_KEY_FILE."""
    with Ledger.open(f"sqlite:///{directory / 'ledger.db'}", clock=fixed_clock) as ledger:
        ledger.signing_keys.publish(create_key_file(key_file), by="test")
    with open_api(directory, signing_key_file=str(key_file)) as api:
        yield api


def test_a_server_with_a_signing_key_signs_its_checkpoints(tmp_path: Path) -> None:
    key_file = tmp_path / "signing.pem"
    with publishing_api(tmp_path, key_file) as api:
        document = api.get("/v1/audit/checkpoint", "auditor").json()
        public = serialization.load_pem_public_key(key_file.with_name("signing.pem.pub").read_bytes())
        assert isinstance(public, Ed25519PublicKey)
        assert document["key_id"] == Signer.from_file(key_file).key_id
        public.verify(bytes.fromhex(document["signature"]), signed_text(document))
        assert document["tree_size"] == api.ledger.head()


def test_a_server_refuses_to_start_with_a_key_the_log_does_not_publish(tmp_path: Path) -> None:
    stray = tmp_path / "stray.pem"
    stray.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(BaseException) as raised, open_api(tmp_path, signing_key_file=str(stray)):
        pass
    assert "signing_key_not_published" in "".join(traceback.format_exception(raised.value))


def test_a_key_retired_while_the_server_runs_makes_checkpoints_503_not_a_client_error(tmp_path: Path) -> None:
    key_file = tmp_path / "signing.pem"
    with publishing_api(tmp_path, key_file) as api:
        api.ledger.signing_keys.retire(Signer.from_file(key_file).key_id, by="test")
        answer = api.get("/v1/audit/checkpoint", "auditor")
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "300"
        assert "signing_key_retired" in answer.text
