"""Issue 12 attacked as a hostile user would: the stored Merkle tree, proofs, signed checkpoints, `verify
--against` and the standalone `ledger-verify`, fed what an insider with SQL access, an unlucky operator
and an auditor with odd files would feed them.

Method: real ledgers on both stores (`store_url`), real writer processes where concurrency matters, and the
installed `ledger-verify` script run as a subprocess (its stdout a pipe, as on an auditor's machine).
Expected values come from the naive RFC 9162 model of tests/contract/test_merkle_tree.py (the whole tree
recomputed from the raw rows) or are written out by hand; nothing of the tree code computes them. A test
that shows a bug fails now (no xfail); the others are regression tests of probes that found the code right.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import multiprocessing
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventsourcing.persistence import PersistenceError
from typer.testing import CliRunner, Result

from ledger import Ledger
from ledger.cli import app
from ledger.domain.errors import IntegrityFailure, LedgerError, StoreUnavailable
from ledger.domain.events import MeritAwarded, Source
from ledger.signing import create_key_file
from ledger_verify.checkpoint import parse_checkpoint
from tests.api.conftest import open_api
from tests.conftest import fixed_clock, registration
from tests.contract.test_merkle_tree import leaves_of, mth, path, subproof
from tests.integration.test_writers_hostile import commit_fails
from tests.support import alter_state, raw_sql

REPO = Path(__file__).resolve().parents[2]
LEDGER_VERIFY = Path(sys.executable).parent / "ledger-verify"
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()
GENESIS = "00" * 32
# More digits than Python's int() takes from text by default (4,300): what an auditor's odd file may hold.
HUGE = "1" + "0" * 5000
SECRET = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"hostile 12 signing key").digest())
PUBLIC = SECRET.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
KEY_ID = hashlib.sha256(PUBLIC).hexdigest()[:16]

runner = CliRunner()


# The naive model of the log, its tree and its documents, from the raw rows.


def ledger_id_of(url: str) -> str:
    return str(raw_sql(url, "SELECT value FROM ledger_meta WHERE name = 'ledger_id'")[0][0])


def chain_of(url: str) -> list[tuple[int, str, bytes]]:
    rows = raw_sql(url, "SELECT position, recorded_at, hash FROM ledger_chain ORDER BY position")
    return [(int(position), str(recorded_at), bytes(hash_)) for position, recorded_at, hash_ in rows]


def naive_checkpoint(url: str, size: int | None = None) -> dict[str, Any]:
    leaves, chain = leaves_of(url), chain_of(url)
    size = len(leaves) if size is None else size
    return {
        "ledger_id": ledger_id_of(url),
        "tree_size": size,
        "root_hash": mth(leaves[:size]).hex(),
        "chain_hash": chain[size - 1][2].hex() if size else GENESIS,
        "recorded_at": chain[size - 1][1] if size else "",
        "key_id": None,
        "signature": None,
    }


def naive_inclusion(url: str, position: int) -> dict[str, Any]:
    leaves = leaves_of(url)
    return {
        "position": position,
        "tree_size": len(leaves),
        "leaf_hash": hashlib.sha256(b"\x00" + leaves[position - 1]).hexdigest(),
        "root_hash": mth(leaves).hex(),
        "audit_path": [hash_.hex() for hash_ in path(position - 1, leaves)],
        "leaf": leaves[position - 1].decode(),
    }


def naive_consistency(url: str, first: int) -> dict[str, Any]:
    leaves = leaves_of(url)
    return {
        "first": first,
        "second": len(leaves),
        "first_root": mth(leaves[:first]).hex(),
        "second_root": mth(leaves).hex(),
        "proof": [hash_.hex() for hash_ in subproof(first, leaves, True)],
    }


def signed(document: dict[str, Any], secret: Ed25519PrivateKey = SECRET) -> dict[str, Any]:
    """`document` signed over the byte string of docs/audit.md, written out here again."""
    public = secret.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = hashlib.sha256(public).hexdigest()[:16]
    text = (
        "cadre-ledger tree head v1\n"
        f"ledger_id {document['ledger_id']}\n"
        f"tree_size {document['tree_size']}\n"
        f"root_hash {document['root_hash']}\n"
        f"chain_hash {document['chain_hash']}\n"
        f"recorded_at {document['recorded_at']}\n"
        f"key_id {key_id}\n"
    )
    return {**document, "key_id": key_id, "signature": secret.sign(text.encode()).hex()}


def naive_rows(leaves: list[bytes]) -> list[tuple[int, bytes]]:
    """Row `p` of ledger_merkle as docs/decisions.md describes it: the hashes of the perfect subtrees whose
    last leaf is leaf p − 1, the leaf itself first — each recomputed from the leaves."""
    rows = []
    for position in range(1, len(leaves) + 1):
        hashes, width = [], 1
        while position % width == 0:
            hashes.append(mth(leaves[position - width : position]))
            width *= 2
        rows.append((position, b"".join(hashes)))
    return rows


def assert_the_tree_is_the_logs(url: str) -> None:
    """Exactly one tree row per event, each the naive model's; as many chain rows as events."""
    leaves = leaves_of(url)
    (events,) = raw_sql(url, "SELECT COUNT(*) FROM {events}")[0]
    (chained,) = raw_sql(url, "SELECT COUNT(*) FROM ledger_chain")[0]
    assert events == chained == len(leaves)
    stored = [(int(p), bytes(h)) for p, h in raw_sql(url, "SELECT position, hashes FROM ledger_merkle")]
    assert sorted(stored) == naive_rows(leaves)


def assert_verifies_clean(ledger: Ledger) -> None:
    report = ledger.verify()
    assert report.ok and report.findings == [], report
    assert report.root_hash == mth(leaves_of(ledger.url)).hex()


# Running the two command lines.


@dataclass(frozen=True)
class Verdict:
    code: int
    out: str
    err: str


def ledger_verify(*arguments: str | Path) -> Verdict:
    """The installed `ledger-verify`, its output through pipes (strict UTF-8, as on a terminal)."""
    done = subprocess.run([LEDGER_VERIFY, *map(str, arguments)], capture_output=True, check=False)
    return Verdict(
        done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    )


def accepted(verdict: Verdict) -> str:
    assert (verdict.code, verdict.err) == (0, ""), verdict
    assert verdict.out.startswith("ok: ") and verdict.out.count("\n") == 1, verdict
    return verdict.out


def failed(verdict: Verdict) -> str:
    assert (verdict.code, verdict.err) == (1, ""), verdict
    assert verdict.out.startswith("failed: ") and verdict.out.count("\n") == 1, verdict
    return verdict.out


def invalid(verdict: Verdict) -> str:
    assert (verdict.code, verdict.out) == (2, ""), verdict
    assert verdict.err.startswith("error: ") and verdict.err.count("\n") == 1, verdict
    return verdict.err


def one_verdict(verdict: Verdict) -> None:
    """Failed or invalid, said in one line — never a traceback (whose exit code 1 would read "failed")."""
    assert "Traceback" not in verdict.err, verdict.err[-600:]
    assert verdict.code in (1, 2) and (verdict.out + verdict.err).count("\n") == 1, verdict


def ledger_cli(*arguments: str) -> Result:
    return runner.invoke(app, list(arguments))


def written(directory: Path, name: str, content: bytes | str | dict[str, Any]) -> Path:
    target = directory / name
    if isinstance(content, dict):
        content = json.dumps(content)
    target.write_bytes(content.encode() if isinstance(content, str) else content)
    return target


def encoded(document: Any) -> bytes:
    return msgspec.json.encode(document)


# The documents the auditor's probes start from: one small SQLite ledger, its export, naive documents.


@dataclass(frozen=True)
class Documents:
    url: str
    export: bytes
    checkpoint: dict[str, Any]  # of the head
    old: dict[str, Any]  # at size 3
    inclusion: dict[str, Any]  # of position 2 in the head's tree
    consistency: dict[str, Any]  # from 3 to the head

    def chain_only(self, **changes: Any) -> dict[str, Any]:
        document = {
            "ledger_id": self.checkpoint["ledger_id"],
            "position": self.checkpoint["tree_size"],
            "hash": self.checkpoint["chain_hash"],
            "recorded_at": self.checkpoint["recorded_at"],
        }
        return document | changes


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Documents:
    url = f"sqlite:///{tmp_path_factory.mktemp('documents') / 'ledger.db'}"
    with Ledger.open(url, clock=fixed_clock) as ledger:
        ledger.post([registration(f"D{n}", key=f"d{n}") for n in range(5)])
        export = io.BytesIO()
        ledger.export(export)
    return Documents(
        url=url,
        export=export.getvalue(),
        checkpoint=naive_checkpoint(url),
        old=naive_checkpoint(url, 3),
        inclusion=naive_inclusion(url, 2),
        consistency=naive_consistency(url, 3),
    )


@pytest.fixture
def database(store_url: str) -> str:
    """A small ledger on each store, closed: the shell opens it."""
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration(f"S{n}", key=f"s{n}") for n in range(4)])
    return store_url


def test_the_documents_the_probes_start_from_verify(documents: Documents, tmp_path: Path) -> None:
    checkpoint = written(tmp_path, "checkpoint.json", signed(documents.checkpoint))
    key = written(tmp_path, "key.hex", PUBLIC.hex())
    accepted(
        ledger_verify(
            "export", written(tmp_path, "e.jsonl", documents.export), checkpoint, "--public-key", key
        )
    )
    accepted(ledger_verify("inclusion", written(tmp_path, "i.json", documents.inclusion), checkpoint))
    old = written(tmp_path, "old.json", documents.old)
    accepted(
        ledger_verify("consistency", written(tmp_path, "c.json", documents.consistency), old, checkpoint)
    )


# Verify and checkpoints while writers append: an append that lands between two of verify's reads.


@contextlib.contextmanager
def an_append_lands_before(
    ledger: Ledger,
    other: Ledger,
    picked: Callable[[str, Sequence[Any]], bool],
) -> Iterator[list[int]]:
    """While the block runs, the first statement of `ledger`'s store that `picked(sql, params)` chooses is
    preceded by a post of `other` (another writer on the same store), so that an append lands exactly
    between two of the reads — where a writer process lands by chance (measured below). Yields the
    positions appended."""
    recorder: Any = ledger._recorder
    original = recorder._cursor
    appended: list[int] = []

    class Cursor:
        def __init__(self, cursor: Any) -> None:
            self._cursor = cursor

        def execute(self, sql: Any, params: Any = None) -> Any:
            if not appended and isinstance(sql, str) and picked(sql, params or ()):
                late = f"LATE{next(_late)}"
                result = other.post([registration(late, key=late)])
                appended.extend(item.position for item in result.results)
            return self._cursor.execute(sql) if params is None else self._cursor.execute(sql, params)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._cursor, name)

    @contextlib.contextmanager
    def cursor(*, write: bool) -> Iterator[Cursor]:
        with original(write=write) as opened:
            yield Cursor(opened)

    recorder._cursor = cursor  # this instance only: other ledgers on the store read as they do
    try:
        yield appended
    finally:
        del recorder._cursor


_late = itertools.count(1)


def second_page_of_the_log(sql: str, params: Sequence[Any]) -> bool:
    """The read of the events after the first page (`log_rows`): the tree's reader has found no more rows."""
    return "LEFT JOIN" in sql and bool(params) and params[0] > 0


def chain_rows_past_the_events(sql: str, _params: Sequence[Any]) -> bool:
    """The read of chain rows past the last event (`log_rows`'s trailing query)."""
    return sql.rstrip().endswith("ORDER BY position LIMIT 1")


@pytest.mark.parametrize(
    "picked", [second_page_of_the_log, chain_rows_past_the_events], ids=["tree_reader_done", "events_done"]
)
def test_an_append_between_two_reads_of_verify_is_not_reported_as_damage(
    store_url: str, picked: Callable[[str, Sequence[Any]], bool]
) -> None:
    """Bug: the tree's row reader stops for good at its first empty page while the event reader goes on
    (a row "missing" from ledger_merkle, and a checkpoint refused with "run `ledger rebuild --tree`"), and
    the trailing chain read is not bounded by the events read (an event "missing"). Nothing was damaged."""
    with (
        Ledger.open(store_url, clock=fixed_clock) as ledger,
        Ledger.open(store_url, clock=fixed_clock) as other,
    ):
        ledger.post([registration("C1", key="c1")])
        with an_append_lands_before(ledger, other, picked) as appended:
            report = ledger.verify()
        assert appended, "the other writer appended during verify"
        assert report.ok and report.findings == [], report
        with an_append_lands_before(ledger, other, picked) as appended:
            checkpoint = ledger.checkpoint()
        assert appended
        assert checkpoint.root_hash == mth(leaves_of(store_url)[: checkpoint.tree_size]).hex()
        assert_verifies_clean(ledger)


# Real writer processes appending while proofs and checkpoints are read.


POSTS_EACH = {2: 150, 4: 80}


def poster(url: str, number: int, count: int, go: Any, reports: Any) -> None:
    with Ledger.open(url, clock=fixed_clock) as ledger:
        ledger.load_all()
        reports.put(("ready", number))
        go.wait(60)
        for step in range(count):
            ledger.post(
                [
                    MeritAwarded(
                        cadre_id=f"P{number}",
                        effective_on=date(2025, 1, 1),
                        source=Source(system=f"p{number}", key=str(step)),
                        award="citation",
                        level="unit",
                    )
                ]
            )
    reports.put(("done", number))


@pytest.mark.slow
@pytest.mark.parametrize("writers", [2, 4])
def test_writers_appending_while_proofs_and_checkpoints_are_read_keep_one_tree_and_refuse_nothing(
    store_url: str, writers: int
) -> None:
    """Every proof and checkpoint read while the writers append is the naive model's of the final log, the
    stored tree is too, and — the bug of the test above, by chance — no checkpoint is refused."""
    with Ledger.open(store_url, clock=fixed_clock) as reader:
        reader.post([registration(f"P{n}", key=f"p{n}") for n in range(writers)])
        context = multiprocessing.get_context("spawn")
        go, reports = context.Event(), context.Queue()
        processes = [
            context.Process(target=poster, args=(store_url, n, POSTS_EACH[writers], go, reports))
            for n in range(writers)
        ]
        for process in processes:
            process.start()
        inclusions, consistencies, checkpoints, refused = [], [], [], []
        try:
            assert sorted(reports.get(timeout=120) for _ in processes) == [
                ("ready", n) for n in range(writers)
            ]
            go.set()
            while any(process.is_alive() for process in processes) or not checkpoints:
                try:
                    checkpoints.append(reader.checkpoint())
                except IntegrityFailure as error:
                    refused.append(str(error))
                head = reader.head()
                inclusions.append(reader.inclusion_proof(1 + (7 * len(inclusions)) % head))
                first = checkpoints[0].tree_size if checkpoints else 1
                consistencies.append(reader.consistency_proof(first))
        finally:
            go.set()
            for process in processes:
                process.join(120)
        assert sorted(reports.get(timeout=10) for _ in processes) == [("done", n) for n in range(writers)]
        leaves = leaves_of(store_url)
        assert len(leaves) == 1 + writers + writers * POSTS_EACH[writers]
        for proof in inclusions:
            size = proof.tree_size
            assert proof.root_hash == mth(leaves[:size]).hex()
            assert proof.audit_path == [h.hex() for h in path(proof.position - 1, leaves[:size])]
            assert proof.leaf.encode() == leaves[proof.position - 1]
        for proof in consistencies:
            assert (proof.first_root, proof.second_root) == (
                mth(leaves[: proof.first]).hex(),
                mth(leaves[: proof.second]).hex(),
            )
            assert proof.proof == [h.hex() for h in subproof(proof.first, leaves[: proof.second], True)]
        chain = chain_of(store_url)
        for checkpoint in checkpoints:
            size = checkpoint.tree_size
            assert checkpoint.root_hash == mth(leaves[:size]).hex()
            assert (checkpoint.chain_hash, checkpoint.recorded_at) == (
                chain[size - 1][2].hex(),
                chain[size - 1][1],
            )
        assert_the_tree_is_the_logs(store_url)
        assert_verifies_clean(reader)
        assert refused == [], (
            f"{len(refused)} of {len(refused) + len(checkpoints)} checkpoints refused while {writers} "
            f"writers appended, though nothing was damaged: {refused[:3]}"
        )


# A writer killed or failing mid-append: the tree row is there exactly when the event is.


KILLED_WRITER = """
import sys
import ledger.writer as writer
from ledger import Ledger
from ledger.store.tree import MerkleTable
from tests.conftest import fixed_clock, registration

appended = writer.Writer._append


def held(*_args, **_kwargs):  # inside the append's transaction, not committed: say so, wait to be killed
    print("held", flush=True)
    sys.stdin.readline()


def appended_then_held(self, *args):
    appended(self, *args)
    held()


if sys.argv[2] == "before_the_tree_rows":  # the event and chain rows are written, the tree's are not
    MerkleTable.rows_for_append = held
else:  # every row of the batch is written
    writer.Writer._append = appended_then_held
Ledger.open(sys.argv[1], clock=fixed_clock).post([registration(f"K{n}", key=f"k{n}") for n in range(50)])
"""


@pytest.mark.parametrize("killed", ["before_the_tree_rows", "after_the_tree_rows"])
def test_a_writer_killed_inside_its_append_leaves_no_tree_row_without_its_event(
    store_url: str, killed: str
) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration("C1", key="c1")])  # this writer now remembers the tree's right edge
        head = ledger.head()
        command = [sys.executable, "-c", KILLED_WRITER, store_url, killed]
        with subprocess.Popen(
            command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        ) as child:
            try:
                assert child.stdout is not None and child.stdout.readline() == "held\n"
            finally:
                child.send_signal(signal.SIGKILL)
        assert child.returncode == -signal.SIGKILL
        assert ledger.head() == head
        assert_the_tree_is_the_logs(store_url)
        assert ledger.post([registration("C2", key="c2")]).results[0].position == head + 1
        with Ledger.open(store_url, clock=fixed_clock) as fresh:
            fresh.post([registration("C3", key="c3")])
        assert_the_tree_is_the_logs(store_url)
        assert_verifies_clean(ledger)


def test_a_commit_that_fails_after_the_tree_rows_were_written_leaves_the_tree_the_logs(
    store_url: str,
) -> None:
    """The writer remembers the right edge of a batch that was never committed: the next append must not
    build on it."""
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration("C1", key="c1")])
        head = ledger.head()
        with commit_fails(store_url), pytest.raises((StoreUnavailable, PersistenceError)):
            ledger.post([registration(f"F{n}", key=f"f{n}") for n in range(20)])
        assert ledger.head() == head
        ledger.post([registration("C2", key="c2")])
        assert_the_tree_is_the_logs(store_url)
        assert_verifies_clean(ledger)


def test_a_tree_row_added_by_hand_past_the_head_does_not_stop_a_running_writer(store_url: str) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration("C1", key="c1")])
        raw_sql(store_url, "INSERT INTO ledger_merkle VALUES (?, ?)", (ledger.head() + 1, bytes(32)))
        ledger.post([registration("C2", key="c2")])
        assert_the_tree_is_the_logs(store_url)
        assert_verifies_clean(ledger)


@pytest.mark.parametrize("tree_rows", ["left_behind", "deleted_too"])
def test_a_log_cut_back_at_its_end_grows_again_with_the_tree_of_the_new_log(
    store_url: str, tree_rows: str
) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        for n in range(6):
            ledger.post([registration(f"C{n}", key=f"c{n}")])
        kept = ledger.head() - 3
        raw_sql(store_url, "DELETE FROM {events} WHERE {pos} > ?", (kept,))
        raw_sql(store_url, "DELETE FROM ledger_chain WHERE position > ?", (kept,))
        if tree_rows == "deleted_too":
            raw_sql(store_url, "DELETE FROM ledger_merkle WHERE position > ?", (kept,))
        ledger.post([registration("AGAIN1", key="again1")])  # the writer that remembered the old edge
        with Ledger.open(store_url, clock=fixed_clock) as fresh:
            fresh.post([registration("AGAIN2", key="again2")])
        assert ledger.head() == kept + 2
        assert_the_tree_is_the_logs(store_url)
        assert_verifies_clean(ledger)


def test_the_importing_process_keeps_the_tree_the_logs_when_it_posts_after_the_import(
    store_url: str, tmp_path: Path
) -> None:
    with Ledger.open(f"sqlite:///{tmp_path / 'original.db'}", clock=fixed_clock) as original:
        for n in range(5):
            original.post([registration(f"C{n}", key=f"c{n}")])
        export = io.BytesIO()
        original.export(export)
        checkpoint = original.checkpoint()
    with Ledger.open(store_url, clock=fixed_clock, publish_illustrative=False) as copy:
        copy.import_(io.BytesIO(export.getvalue()))
        copy.post([registration("AFTER", key="after")])
        assert_the_tree_is_the_logs(store_url)
        assert_verifies_clean(copy)
        assert copy.verify(checkpoint).ok


# An insider with SQL access, and an auditor holding an earlier checkpoint.


def rewrite_consistently(url: str, position: int, old: bytes, new: bytes) -> None:
    """Change the event at `position` and recompute every chain hash from there, as docs/audit.md says
    they are computed: the log agrees with itself again."""
    alter_state(url, position, old, new)
    previous = bytes(32)
    for chained, canonical in zip(chain_of(url), leaves_of(url), strict=True):
        previous = hashlib.sha256(previous + canonical).digest()
        raw_sql(url, "UPDATE ledger_chain SET hash = ? WHERE position = ?", (previous, chained[0]))


def test_a_consistent_rewrite_below_an_auditors_checkpoint_fails_the_consistency_proof_from_it(
    store_url: str, tmp_path: Path
) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration(f"C{n}", key=f"c{n}") for n in range(4)])
        old = written(tmp_path, "old.json", naive_checkpoint(store_url))
        ledger.post([registration(f"N{n}", key=f"n{n}") for n in range(3)])
        rewrite_consistently(store_url, 3, "张三".encode(), "李四".encode())
        ledger.rebuild_tree()
        assert_verifies_clean(ledger)  # consistent: only a checkpoint kept elsewhere catches it
        first = json.loads(old.read_text())["tree_size"]
        proof = written(tmp_path, "proof.json", encoded(ledger.consistency_proof(first)))
        new = written(tmp_path, "new.json", encoded(ledger.checkpoint()))
        assert "first_root" in failed(ledger_verify("consistency", proof, old, new))
        assert not ledger.verify(parse_checkpoint(old.read_bytes())).ok


def test_an_event_altered_with_its_leaf_row_fails_its_inclusion_proof_against_an_earlier_checkpoint(
    store_url: str, tmp_path: Path
) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration(f"C{n}", key=f"c{n}") for n in range(4)])
        checkpoint = written(tmp_path, "checkpoint.json", naive_checkpoint(store_url))
        alter_state(store_url, 3, "张三".encode(), "李四".encode())
        forged = hashlib.sha256(b"\x00" + leaves_of(store_url)[2]).digest()
        raw_sql(store_url, "UPDATE ledger_merkle SET hashes = ? WHERE position = 3", (forged,))
        proof = ledger.inclusion_proof(3)
        assert "李四" in proof.leaf and proof.leaf_hash == forged.hex()
        verdict = failed(
            ledger_verify("inclusion", written(tmp_path, "proof.json", encoded(proof)), checkpoint)
        )
        assert "audit_path" in verdict


def test_the_proof_of_an_event_whose_stored_bytes_are_not_utf8_is_an_integrity_failure(
    sqlite_url: str,
) -> None:
    """Bug: `canonical_bytes(...).decode()` raises UnicodeDecodeError out of `inclusion_proof`. (On
    PostgreSQL the unique source index, built on `convert_from(state, 'UTF8')`, refuses such a row.)"""
    with Ledger.open(sqlite_url, clock=fixed_clock) as ledger:
        ledger.post([registration(f"C{n}", key=f"c{n}") for n in range(4)])
        alter_state(sqlite_url, 3, b'"name":"', b'"name":"\xff')
        with pytest.raises(IntegrityFailure):
            ledger.inclusion_proof(3)


def test_the_proof_route_answers_an_event_that_is_not_utf8_with_a_409_not_a_500(tmp_path: Path) -> None:
    with open_api(tmp_path) as api:
        alter_state(api.url, 3, b'"name":"', b'"name":"\xff')
        answer = api.get("/v1/audit/proofs/inclusion", "auditor", position=3)
        assert answer.status_code == 409, answer.text


def test_the_proof_of_a_position_whose_event_row_was_deleted_is_an_integrity_failure(store_url: str) -> None:
    """Bug: refused as InvalidInput `position_out_of_range` (exit 2, HTTP 422) though the position is in
    the log: the log is damaged, which is exit 1 / HTTP 409."""
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration(f"C{n}", key=f"c{n}") for n in range(4)])
        raw_sql(store_url, "DELETE FROM {events} WHERE {pos} = 3")
        with pytest.raises(IntegrityFailure):
            ledger.inclusion_proof(3)


def test_a_ledger_id_changed_by_hand_to_hold_a_line_break_is_refused_as_a_ledger_error(
    store_url: str, tmp_path: Path
) -> None:
    """Bug: the signed text refuses it with CheckpointError, a ValueError that escapes as a 500."""
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        signer = create_key_file(tmp_path / "signing.pem")
        ledger.signing_keys.publish(signer, by="test")
    raw_sql(store_url, "UPDATE ledger_meta SET value = ? WHERE name = 'ledger_id'", ("forged\ntree_size 1",))
    with Ledger.open(store_url, clock=fixed_clock) as ledger, pytest.raises(LedgerError):
        ledger.checkpoint(signer)


# A checkpoint whose recorded_at was changed.


@pytest.mark.parametrize("shape", ["tree", "chain_only"])
def test_verify_against_a_checkpoint_whose_recorded_at_was_changed_fails(store_url: str, shape: str) -> None:
    """Bug: `check_checkpoint` never compares recorded_at with the log's, which the chain hash covers;
    `ledger-verify export` refuses the same changed checkpoint (tree shape)."""
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration(f"C{n}", key=f"c{n}") for n in range(4)])
        document = naive_checkpoint(store_url)
        if shape == "chain_only":
            document = {
                "ledger_id": document["ledger_id"],
                "position": document["tree_size"],
                "hash": document["chain_hash"],
                "recorded_at": document["recorded_at"],
            }
        assert ledger.verify(parse_checkpoint(json.dumps(document).encode())).ok
        document["recorded_at"] = "2020-01-01T00:00:00.000000Z"
        report = ledger.verify(parse_checkpoint(json.dumps(document).encode()))
        assert not report.ok and report.first_bad_position == ledger.head(), report


@pytest.mark.parametrize("shape", ["tree", "chain_only"])
def test_ledger_verify_export_refuses_a_checkpoint_whose_recorded_at_was_changed(
    documents: Documents, tmp_path: Path, shape: str
) -> None:
    """The tree shape is refused; bug: the chain-only shape is not (`at_checkpoint` returns before it)."""
    changed = "2020-01-01T00:00:00.000000Z"
    document = (
        documents.checkpoint | {"recorded_at": changed}
        if shape == "tree"
        else documents.chain_only(recorded_at=changed)
    )
    export = written(tmp_path, "export.jsonl", documents.export)
    assert "recorded_at" in failed(ledger_verify("export", export, written(tmp_path, "c.json", document)))


# An auditor's odd files: ledger-verify.


def with_huge(document: dict[str, Any], field: str) -> str:
    return json.dumps(document | {field: "@huge@"}).replace('"@huge@"', HUGE)


@pytest.mark.parametrize("command", ["export_header", "checkpoint", "inclusion", "consistency"])
def test_a_number_of_thousands_of_digits_is_invalid_input_not_a_traceback(
    documents: Documents, tmp_path: Path, command: str
) -> None:
    """Bug: json.loads raises a plain ValueError (int max str digits) that no parser catches: exit 1 with a
    traceback, which reads as "verification failed"."""
    checkpoint = written(tmp_path, "checkpoint.json", documents.checkpoint)
    header, rest = documents.export.split(b"\n", 1)
    export = written(tmp_path, "export.jsonl", documents.export)
    if command == "export_header":
        huge = with_huge(json.loads(header), "position").encode() + b"\n" + rest
        verdict = ledger_verify("export", written(tmp_path, "huge.jsonl", huge), checkpoint)
    elif command == "checkpoint":
        verdict = ledger_verify(
            "export", export, written(tmp_path, "huge.json", with_huge(documents.checkpoint, "tree_size"))
        )
    elif command == "inclusion":
        verdict = ledger_verify(
            "inclusion",
            written(tmp_path, "huge.json", with_huge(documents.inclusion, "position")),
            checkpoint,
        )
    else:
        old = written(tmp_path, "old.json", documents.old)
        proof = written(tmp_path, "huge.json", with_huge(documents.consistency, "first"))
        verdict = ledger_verify("consistency", proof, old, checkpoint)
    assert "huge" in invalid(verdict)


@pytest.mark.parametrize("where", ["leaf", "ledger_id", "signed_recorded_at"])
def test_a_lone_surrogate_escape_is_one_verdict_not_a_traceback(
    documents: Documents, tmp_path: Path, where: str
) -> None:
    """Bug: `"\\ud800"` decodes to a str that cannot be encoded as UTF-8 — hashing the leaf, printing the
    failure line, building the signed text all raise UnicodeEncodeError."""
    export = written(tmp_path, "export.jsonl", documents.export)
    checkpoint = written(tmp_path, "checkpoint.json", documents.checkpoint)
    if where == "leaf":
        leaf = documents.inclusion["leaf"].replace('"type"', '"x":"\ud800","type"', 1)
        proof = written(tmp_path, "proof.json", documents.inclusion | {"leaf": leaf})
        verdict = ledger_verify("inclusion", proof, checkpoint)
    elif where == "ledger_id":
        verdict = ledger_verify(
            "export", export, written(tmp_path, "c.json", documents.checkpoint | {"ledger_id": "\ud800"})
        )
    else:
        forged = signed(documents.checkpoint) | {"recorded_at": "\ud800"}
        key = written(tmp_path, "key.hex", PUBLIC.hex())
        verdict = ledger_verify("export", export, written(tmp_path, "c.json", forged), "--public-key", key)
    one_verdict(verdict)


@pytest.mark.parametrize("document", ["signed_checkpoint", "inclusion_proof"])
def test_a_document_with_a_duplicated_key_is_refused_as_ambiguous(
    documents: Documents, tmp_path: Path, document: str
) -> None:
    """Bug: json.loads keeps the last of two values, another reader (or a person) the first: a signed
    checkpoint that says tree_size 3 and 6 "verifies"."""
    key = written(tmp_path, "key.hex", PUBLIC.hex())
    if document == "signed_checkpoint":
        text = json.dumps(signed(documents.checkpoint)).replace(
            '{"ledger_id"', '{"tree_size": 3, "ledger_id"', 1
        )
        export = written(tmp_path, "export.jsonl", documents.export)
        verdict = ledger_verify("export", export, written(tmp_path, "c.json", text), "--public-key", key)
    else:
        text = json.dumps(documents.inclusion).replace('{"position"', '{"position": 4, "position"', 1)
        checkpoint = written(tmp_path, "c.json", documents.checkpoint)
        verdict = ledger_verify("inclusion", written(tmp_path, "proof.json", text), checkpoint)
    assert "duplicate" in invalid(verdict).lower()


def test_a_public_key_of_small_order_which_any_signature_fits_is_refused(
    documents: Documents, tmp_path: Path
) -> None:
    """Hardening (RFC 8032 allows it, OpenSSL accepts it): with the identity point as public key, the
    signature (identity, 0) verifies over every checkpoint — a key that proves nothing about who signed."""
    identity = bytes([1]) + bytes(31)
    forged = documents.checkpoint | {
        "key_id": hashlib.sha256(identity).hexdigest()[:16],
        "signature": (identity + bytes(32)).hex(),
    }
    key = written(tmp_path, "key.hex", identity.hex())
    export = written(tmp_path, "export.jsonl", documents.export)
    one_verdict(ledger_verify("export", export, written(tmp_path, "c.json", forged), "--public-key", key))


def test_a_checkpoint_with_a_bom_crlf_and_indentation_is_accepted(
    documents: Documents, tmp_path: Path
) -> None:
    text = json.dumps(signed(documents.checkpoint), indent=4).replace("\n", "\r\n") + "  \r\n"
    checkpoint = written(tmp_path, "c.json", b"\xef\xbb\xbf" + text.encode())
    key = written(tmp_path, "key.hex", PUBLIC.hex() + "\r\n")
    export = written(tmp_path, "export.jsonl", documents.export)
    assert f"signed by key {KEY_ID}" in accepted(
        ledger_verify("export", export, checkpoint, "--public-key", key)
    )
    proof = written(
        tmp_path, "proof.json", json.dumps(documents.inclusion, ensure_ascii=True).replace('\\"', "\\u0022")
    )
    accepted(ledger_verify("inclusion", proof, checkpoint))


def test_an_export_with_crlf_line_endings_fails_at_its_first_event_line(
    documents: Documents, tmp_path: Path
) -> None:
    export = written(tmp_path, "export.jsonl", documents.export.replace(b"\n", b"\r\n"))
    checkpoint = written(tmp_path, "c.json", documents.checkpoint)
    assert failed(ledger_verify("export", export, checkpoint)).startswith("failed: line 2 (position 1): ")


def test_an_empty_log_is_its_empty_tree_and_an_empty_file_is_no_export(
    documents: Documents, tmp_path: Path
) -> None:
    ledger_id = documents.checkpoint["ledger_id"]
    empty = {
        "ledger_id": ledger_id,
        "tree_size": 0,
        "root_hash": EMPTY_ROOT,
        "chain_hash": GENESIS,
        "recorded_at": "",
    }
    checkpoint = written(tmp_path, "empty.json", empty)
    header = {"format": "cadre-ledger-export/1", "ledger_id": ledger_id, "position": 0, "head_hash": GENESIS}
    header_only = written(tmp_path, "header.jsonl", json.dumps(header) + "\n")
    assert "matches the checkpoint at 0" in accepted(ledger_verify("export", header_only, checkpoint))
    whole = written(tmp_path, "export.jsonl", documents.export)
    assert "extends the checkpoint at 0" in accepted(ledger_verify("export", whole, checkpoint))
    invalid(ledger_verify("export", written(tmp_path, "nothing.jsonl", b""), checkpoint))
    changed = written(tmp_path, "changed.json", empty | {"root_hash": "11" * 32})
    failed(ledger_verify("export", header_only, changed))


@pytest.mark.parametrize(
    ("command", "field"),
    [
        ("checkpoint", "tree_size"),
        ("inclusion", "position"),
        ("consistency", "second"),
        ("export_header", "position"),
    ],
)
def test_a_negative_size_is_invalid_input_naming_the_field(
    documents: Documents, tmp_path: Path, command: str, field: str
) -> None:
    checkpoint = written(tmp_path, "checkpoint.json", documents.checkpoint)
    export = written(tmp_path, "export.jsonl", documents.export)
    if command == "checkpoint":
        verdict = ledger_verify(
            "export", export, written(tmp_path, "c.json", documents.checkpoint | {field: -1})
        )
    elif command == "inclusion":
        verdict = ledger_verify(
            "inclusion", written(tmp_path, "p.json", documents.inclusion | {field: -1}), checkpoint
        )
    elif command == "consistency":
        old = written(tmp_path, "old.json", documents.old)
        proof = written(tmp_path, "p.json", documents.consistency | {field: -1})
        verdict = ledger_verify("consistency", proof, old, checkpoint)
    else:
        header, rest = documents.export.split(b"\n", 1)
        negative = json.dumps(json.loads(header) | {field: -1}).encode() + b"\n" + rest
        verdict = ledger_verify("export", written(tmp_path, "n.jsonl", negative), checkpoint)
    assert field in invalid(verdict)


# An auditor's odd files: `ledger verify --against`.


@pytest.mark.parametrize(
    "oddity", ["bom_crlf", "size_zero", "huge_size", "duplicated_key", "surrogate_ledger_id"]
)
def test_verify_against_an_odd_checkpoint_file_answers_one_verdict(
    database: str, tmp_path: Path, oddity: str
) -> None:
    """Accepted: a BOM with CRLF, the empty tree. Refused as input (exit 2): a huge number, a duplicated
    key, a lone surrogate escape (each was a traceback or read as its last value)."""
    document = naive_checkpoint(database)
    expected = 0
    if oddity == "bom_crlf":
        content = b"\xef\xbb\xbf" + json.dumps(document, indent=2).replace("\n", "\r\n").encode()
    elif oddity == "size_zero":
        content = json.dumps(
            document | {"tree_size": 0, "root_hash": EMPTY_ROOT, "chain_hash": GENESIS, "recorded_at": ""}
        ).encode()
    elif oddity == "huge_size":
        content, expected = with_huge(document, "tree_size").encode(), 2
    elif oddity == "duplicated_key":
        content = json.dumps(document).replace('{"ledger_id"', '{"tree_size": 1, "ledger_id"', 1).encode()
        expected = 2
    else:
        # Not Unicode text: refused as input (exit 2), like every other document that is not one.
        content, expected = json.dumps(document | {"ledger_id": "\ud800"}).encode(), 2
    checkpoint = written(tmp_path, "checkpoint.json", content)
    result = ledger_cli("verify", "--against", str(checkpoint), "-d", database, "--format", "json")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == expected, (result.stdout, result.stderr)
    if expected < 2:
        assert json.loads(result.stdout)["ok"] is (expected == 0)
