"""The Merkle tree the store keeps (RFC 9162 over the log), on every store, held to a naive model.

The model here recomputes everything from the raw rows: the leaves are the canonical bytes built by hand
from each chain row and event row (docs/audit.md), MTH and the proofs are RFC 9162's recursions written
out as plainly as possible. Nothing of the ledger's tree code computes an expected value.
"""

from __future__ import annotations

import hashlib
from datetime import date

import pytest

from ledger import IntegrityFailure, InvalidInput, Ledger
from ledger.domain.events import MeritAwarded
from tests.conftest import fixed_clock, registration, source
from tests.support import raw_sql


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return sha256(b"\x00" + leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def path(index: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) <= 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if index < k:
        return [*path(index, leaves[:k]), mth(leaves[k:])]
    return [*path(index - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*subproof(m, leaves[:k], whole), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def leaves_of(url: str) -> list[bytes]:
    """The canonical bytes of every event, built by hand from the stored rows."""
    rows = raw_sql(
        url,
        "SELECT c.position, c.recorded_at, e.state FROM ledger_chain c "
        "JOIN {events} e ON e.{pos} = c.position ORDER BY c.position",
    )
    return [
        b'{"position":%d,"recorded_at":"%s",' % (position, recorded_at.encode()) + bytes(state)[1:]
        for position, recorded_at, state in rows
    ]


def merits(cadre_id: str, count: int, first_day: int = 1) -> list[MeritAwarded]:
    return [
        MeritAwarded(
            cadre_id=cadre_id,
            effective_on=date(2024, 3, first_day + day),
            source=source(),
            award="citation",
            level="unit",
        )
        for day in range(count)
    ]


def grow(ledger: Ledger, batches: list[int]) -> None:
    """Post batches of the given sizes (a registration, then merits), each to its own cadre."""
    for number, size in enumerate(batches):
        cadre_id = f"T{number}"
        ledger.post([registration(cadre_id), *merits(cadre_id, size - 1)])


@pytest.fixture
def grown(store_url: str):
    ledger = Ledger.open(store_url, clock=fixed_clock)
    # Batch sizes that land on and straddle powers of two: sizes 1 (the policy), 2, 3, 7, 8, 9, 16, 17 …
    grow(ledger, [1, 1, 4, 1, 7, 2, 5, 8, 3])
    yield store_url, ledger
    ledger.close()


def test_every_tree_head_and_every_proof_equals_the_naive_model(grown) -> None:
    url, ledger = grown
    leaves = leaves_of(url)
    size = ledger.head()
    assert len(leaves) == size == 33
    for n in range(1, size + 1):
        root = mth(leaves[:n]).hex()
        for index in range(n):
            proof = ledger.inclusion_proof(index + 1, n)
            assert proof.root_hash == root
            assert proof.leaf_hash == sha256(b"\x00" + leaves[index]).hex()
            assert proof.audit_path == [h.hex() for h in path(index, leaves[:n])], (index, n)
            assert proof.leaf.encode() == leaves[index]
        for m in range(1, n + 1):
            consistency = ledger.consistency_proof(m, n)
            assert (consistency.first_root, consistency.second_root) == (mth(leaves[:m]).hex(), root)
            assert consistency.proof == [h.hex() for h in subproof(m, leaves[:n], True)], (m, n)
    report = ledger.verify()
    assert report.ok and report.root_hash == mth(leaves).hex()


def test_defaults_are_the_head(grown) -> None:
    url, ledger = grown
    leaves = leaves_of(url)
    assert ledger.inclusion_proof(5).tree_size == ledger.head()
    consistency = ledger.consistency_proof(10)
    assert (consistency.second, consistency.second_root) == (ledger.head(), mth(leaves).hex())


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda ledger: ledger.inclusion_proof(0), "position"),
        (lambda ledger: ledger.inclusion_proof(34), "position"),
        (lambda ledger: ledger.inclusion_proof(10, 9), "position"),
        (lambda ledger: ledger.inclusion_proof(1, 34), "tree_size"),
        (lambda ledger: ledger.inclusion_proof(1, 0), "tree_size"),
        (lambda ledger: ledger.consistency_proof(0, 5), "first"),
        (lambda ledger: ledger.consistency_proof(6, 5), "first"),
        (lambda ledger: ledger.consistency_proof(1, 34), "second"),
    ],
)
def test_a_proof_outside_the_log_names_the_field(grown, call, field) -> None:
    _url, ledger = grown
    with pytest.raises(InvalidInput) as raised:
        call(ledger)
    assert raised.value.field == field


def test_two_writers_taking_turns_keep_one_tree(store_url: str) -> None:
    """Each writer remembers the tree's right edge after its own appends; the other's appends must make
    it read the edge again, not extend a stale one."""
    with (
        Ledger.open(store_url, clock=fixed_clock) as first,
        Ledger.open(store_url, clock=fixed_clock) as second,
    ):
        for turn in range(12):
            writer = first if turn % 3 else second
            cadre_id = f"W{turn}"
            writer.post([registration(cadre_id), *merits(cadre_id, turn % 4)])
        leaves = leaves_of(store_url)
        for ledger in (first, second):
            report = ledger.verify()
            assert report.ok and report.root_hash == mth(leaves).hex()
            assert ledger.consistency_proof(7).second_root == mth(leaves).hex()


def test_a_ledger_made_before_the_tree_gets_it_when_opened(store_url: str) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        grow(ledger, [3, 5, 2])
    raw_sql(store_url, "DELETE FROM ledger_merkle")
    with Ledger.open(store_url, clock=fixed_clock, create=False) as reopened:
        leaves = leaves_of(store_url)
        assert reopened.verify().ok
        assert reopened.inclusion_proof(4).root_hash == mth(leaves).hex()
        assert raw_sql(store_url, "SELECT COUNT(*) FROM ledger_merkle")[0][0] == len(leaves)


def test_an_append_completes_a_tree_whose_tail_was_deleted(store_url: str) -> None:
    """A writer that has not appended yet reads the tree's edge from the table: finding the table behind
    the log (a tail deleted, or a ledger older than the tree), it completes it under the append's lock."""
    with (
        Ledger.open(store_url, clock=fixed_clock) as ledger,
        Ledger.open(store_url, clock=fixed_clock) as other,
    ):
        grow(other, [4, 4])
        raw_sql(store_url, "DELETE FROM ledger_merkle WHERE position > 2")
        ledger.post([registration("LATE"), *merits("LATE", 2)])
        leaves = leaves_of(store_url)
        report = ledger.verify()
        assert report.ok and report.root_hash == mth(leaves).hex()
        assert ledger.inclusion_proof(6).audit_path == [h.hex() for h in path(5, leaves)]


def test_an_import_keeps_the_tree_of_the_original(store_url: str, tmp_path) -> None:
    with Ledger.open(f"sqlite:///{tmp_path / 'original.db'}", clock=fixed_clock) as original:
        grow(original, [2, 6, 3])
        export = tmp_path / "export.jsonl"
        with export.open("wb") as stream:
            original.export(stream)
        checkpoint = original.checkpoint()
    with Ledger.open(store_url, clock=fixed_clock, publish_illustrative=False) as copy:
        with export.open("rb") as stream:
            copy.import_(stream)
        assert copy.verify(checkpoint).ok
        assert copy.consistency_proof(4).second_root == checkpoint.root_hash


# Tampering with the tree's own table.


def test_a_changed_tree_row_is_found_and_refuses_a_checkpoint_until_rebuilt(grown) -> None:
    url, ledger = grown
    leaves = leaves_of(url)
    raw_sql(url, "UPDATE ledger_merkle SET hashes = ? WHERE position = 8", (bytes(32 * 4),))
    report = ledger.verify()
    assert report.first_bad_position is None and not report.ok
    assert [(f.table, f.row, f.reason) for f in report.findings] == [
        ("ledger_merkle", "position 8", "altered")
    ]
    assert report.root_hash == mth(leaves).hex(), "the tree head verify gives is the log's"
    # A proof read from the changed row is not the log's (an auditor's check of it fails).
    assert ledger.inclusion_proof(3).audit_path != [h.hex() for h in path(2, leaves)]
    with pytest.raises(IntegrityFailure, match="ledger_merkle"):
        ledger.checkpoint()
    ledger.rebuild_tree()
    assert ledger.verify().ok
    assert ledger.checkpoint().root_hash == mth(leaves).hex()


def test_a_deleted_tree_row_is_found_and_a_proof_that_needs_it_is_refused(grown) -> None:
    url, ledger = grown
    raw_sql(url, "DELETE FROM ledger_merkle WHERE position = 16")
    report = ledger.verify()
    assert [(f.row, f.reason) for f in report.findings] == [("position 16", "missing")]
    with pytest.raises(IntegrityFailure, match="lacks position 16"):
        ledger.inclusion_proof(1)
    # The head (33) stands on the subtree of positions 1–32 stored at 32: appends go on meanwhile.
    ledger.post([registration("AFTER")])
    ledger.rebuild_tree()
    assert ledger.verify().ok


def test_an_added_tree_row_is_found(grown) -> None:
    url, ledger = grown
    raw_sql(url, "INSERT INTO ledger_merkle VALUES (?, ?)", (99, bytes(32)))
    report = ledger.verify()
    assert [(f.row, f.reason) for f in report.findings] == [("position 99", "inserted")]


def test_an_append_that_needs_a_deleted_edge_row_is_refused_and_records_nothing(grown) -> None:
    """A writer reads the tree's right edge when it has not appended the head itself (the writer that
    did keeps the edge in memory, so its next appends are right, and verify names the deleted row)."""
    url, ledger = grown
    head = ledger.head()
    raw_sql(url, "DELETE FROM ledger_merkle WHERE position = 32")  # the edge of the tree of 33
    with Ledger.open(url, clock=fixed_clock) as cold:
        with pytest.raises(IntegrityFailure, match="ledger rebuild --tree"):
            cold.post([registration("REFUSED")])
        assert cold.head() == head
        ledger.post([registration("WARM")])
        assert [(f.row, f.reason) for f in ledger.verify().findings] == [("position 32", "missing")]
        cold.rebuild_tree()
        cold.post([registration("REFUSED")])
        leaves = leaves_of(url)
        report = cold.verify()
        assert report.ok and report.root_hash == mth(leaves).hex()


def test_rows_appended_while_verify_reads_are_not_findings(grown) -> None:
    """verify reads the chain and the tree page by page while writers append: tree rows past the last
    position the chain was read to are the new events' own, not rows inserted by hand."""
    from ledger.integrity.verify import verify_rows
    from ledger.store.mapper import topic_of

    url, ledger = grown
    recorder = ledger._recorder
    read_before = list(recorder.log_rows())  # the chain as a verify that finished a moment ago read it
    ledger.post([registration("DURING"), *merits("DURING", 2)])

    def verified():
        return verify_rows(
            read_before,
            topic_of=topic_of,
            position_of_event=recorder.position_of_event,
            tree_rows=recorder.tree.rows(len(read_before)),
            row_past_the_log=recorder.tree.row_past_the_log,
        )

    outcome = verified()
    assert outcome.ok and outcome.tree is None
    raw_sql(url, "INSERT INTO ledger_merkle VALUES (?, ?)", (ledger.head() + 1, bytes(32)))
    forged = verified()
    assert forged.tree is not None and (forged.tree.position, forged.tree.reason) == (
        ledger.head() + 1,
        "inserted",
    )
