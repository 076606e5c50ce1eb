"""The Merkle tree over the log, kept in the append transaction (RFC 9162; `ledger_verify.merkle`).

Table `ledger_merkle`, one row per position `p`: `hashes` is the concatenation of the 32-byte hashes of
the perfect subtrees whose last leaf is leaf `p − 1` — the leaf hash itself (level 0), then one hash per
level up to the number of trailing zero bits of `p`. So the perfect subtree `(level, index)` is stored in
the row at position `(index + 1) · 2^level`, at byte `32 · level`; every perfect subtree of the tree is
stored exactly once, about two hashes a row, and any root or proof is read from O(log n) rows.

An append reads the right edge of the tree (its `Frontier`: at most log₂ n rows), adds the batch's
leaves, and writes the batch's rows in the same transaction as the events and their chain rows: the tree
is never behind the log, on either store. The frontier is remembered by the head it belongs to — its
position and chain hash, which bind every leaf before it — so a writer that appended the last batch
itself reads nothing.

A ledger made before the tree existed has no rows: `complete` adds the missing rows from the log, once,
when the ledger is opened (and after a damaged tail is found). `verify` recomputes the tree from the log
and compares every row (`ledger.integrity.verify`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from ledger.domain.errors import IntegrityFailure
from ledger.integrity.chain import canonical_bytes
from ledger_verify.merkle import (
    HASH_SIZE,
    Frontier,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
    perfect_subtrees,
    range_hash,
    ranges_subtrees,
)

if TYPE_CHECKING:
    from ledger.store.recorders import Head, LedgerRecorder

__all__ = ["MERKLE_PAGE_ROWS", "TREE_TABLE", "MerkleTable", "TreeProof", "row_position"]

TREE_TABLE: Final = "ledger_merkle"

logger = logging.getLogger("ledger.store")

MERKLE_PAGE_ROWS: Final = 20_000  # rows read per query when verifying or completing the tree
_POSITIONS_PER_QUERY: Final = 1_000

Subtree = tuple[int, int]


def row_position(subtree: Subtree) -> int:
    """The position of the row that stores the perfect subtree `(level, index)`."""
    level, index = subtree
    return (index + 1) << level


class TreeProof:
    """The hashes a proof lists, the root(s) it is against, and the leaf hash (inclusion only)."""

    __slots__ = ("hashes", "leaf_hash", "roots")

    def __init__(self, hashes: list[bytes], roots: tuple[bytes, ...], leaf: bytes | None = None) -> None:
        self.hashes = hashes
        self.roots = roots
        self.leaf_hash = leaf


class MerkleTable:
    """The stored tree of one recorder's log: kept by the append, read by proofs and roots."""

    def __init__(self, recorder: LedgerRecorder) -> None:
        self._recorder = recorder
        # (position, chain hash) of a head and the tree's right edge there.
        self._frontier: tuple[int, bytes, list[bytes]] | None = None

    # The append.

    def rows_for_append(
        self, cursor: Any, head: Head, leaves: Sequence[bytes], last_hash: bytes
    ) -> list[tuple[int, bytes]]:
        """The rows the leaves `leaves` (canonical bytes, positions head+1 …) add; `last_hash` is the chain
        hash of the last of them (the frontier after the batch is remembered under it)."""
        kept = self._frontier
        if kept is not None and kept[0] == head.position and kept[1] == head.hash:
            frontier = Frontier(head.position, kept[2])
        else:
            # Another process appended the head (or nobody since this one opened): read the right edge,
            # and bring the table to the head first if it is not there — behind it (a ledger older than
            # the tree, a tail deleted) or past it (a log cut back: a restore, a promoted standby).
            frontier = self._complete_in(cursor, head.position)[0]
        rows = []
        position = head.position
        for leaf in leaves:
            position += 1
            rows.append((position, b"".join(frontier.append(leaf_hash(leaf)))))
        self._frontier = (position, last_hash, frontier.subtrees())
        return rows

    def _frontier_at(self, cursor: Any, size: int) -> Frontier:
        """The right edge of the tree of `size` leaves, read from the table (IntegrityFailure if a row of
        it is gone)."""
        if size == 0:
            return Frontier()
        subtrees = perfect_subtrees(0, size)
        found = self._fetch(cursor, subtrees)
        missing = [s for s in subtrees if s not in found]
        if missing:
            raise IntegrityFailure(
                f"the Merkle tree (table ledger_merkle) lacks position {row_position(missing[0])}, which "
                f"the append needs: the table was changed by hand; `ledger verify` says where, and "
                "`ledger rebuild --tree` recomputes it from the log",
                position=row_position(missing[0]),
                reason="missing",
            )
        return Frontier(size, [found[s] for s in subtrees])

    # Reads.

    def _fetch(self, cursor: Any, subtrees: Iterable[Subtree]) -> dict[Subtree, bytes]:
        """The stored hash of each perfect subtree whose row exists (and is long enough)."""
        wanted: dict[int, list[Subtree]] = {}
        for subtree in subtrees:
            wanted.setdefault(row_position(subtree), []).append(subtree)
        found: dict[Subtree, bytes] = {}
        positions = sorted(wanted)
        sql = self._recorder._sql
        for start in range(0, len(positions), _POSITIONS_PER_QUERY):
            chunk = positions[start : start + _POSITIONS_PER_QUERY]
            cursor.execute(
                sql(
                    "SELECT position, hashes FROM {merkle} WHERE position IN ("
                    + ", ".join("?" * len(chunk))
                    + ")"
                ),
                chunk,
            )
            for position, hashes in cursor.fetchall():
                blob = bytes(hashes)
                for level, index in wanted[position]:
                    part = blob[level * HASH_SIZE : (level + 1) * HASH_SIZE]
                    if len(part) == HASH_SIZE:
                        found[(level, index)] = part
        return found

    def _fetched(self, subtrees: set[Subtree]) -> dict[Subtree, bytes]:
        with self._recorder._cursor(write=False) as cursor:
            found = self._fetch(cursor, subtrees)
        missing = sorted(subtrees - found.keys(), key=row_position)
        if missing:
            raise IntegrityFailure(
                f"the Merkle tree (table ledger_merkle) lacks position {row_position(missing[0])}: the "
                "table was changed by hand; `ledger verify` says where, and `ledger rebuild --tree` "
                "recomputes it from the log",
                position=row_position(missing[0]),
                reason="missing",
            )
        return found

    def inclusion(self, index: int, size: int) -> TreeProof:
        """The audit path of leaf `index` in the tree of `size` leaves, its root and the leaf's hash:
        one read of every stored hash they need."""
        ranges = inclusion_ranges(index, size)
        found = self._fetched(ranges_subtrees(ranges) | set(perfect_subtrees(0, size)) | {(0, index)})
        hashes = [range_hash(start, end, found) for start, end in ranges]
        return TreeProof(hashes, (range_hash(0, size, found),), found[(0, index)])

    def consistency(self, first: int, second: int) -> TreeProof:
        """The consistency proof from the tree of `first` leaves to that of `second`, and both roots."""
        ranges = consistency_ranges(first, second)
        found = self._fetched(
            ranges_subtrees(ranges) | set(perfect_subtrees(0, first)) | set(perfect_subtrees(0, second))
        )
        hashes = [range_hash(start, end, found) for start, end in ranges]
        return TreeProof(hashes, (range_hash(0, first, found), range_hash(0, second, found)))

    def rows(self, until: int) -> Iterator[tuple[int, bytes]]:
        """Every stored row through position `until`, in position order (for verify)."""
        after = 0
        while True:
            with self._recorder._cursor(write=False) as cursor:
                cursor.execute(
                    self._recorder._sql(
                        "SELECT position, hashes FROM {merkle} WHERE position > ? AND position <= ? "
                        "ORDER BY position LIMIT ?"
                    ),
                    (after, until, MERKLE_PAGE_ROWS),
                )
                page = cursor.fetchall()
            if not page:
                return
            if isinstance(page[0][1], memoryview):  # PostgreSQL's bytea, on some drivers
                page = [(position, bytes(hashes)) for position, hashes in page]
            yield from page
            after = page[-1][0]

    def row_past_the_log(self) -> int | None:
        """The first row past the log's head, in one statement (so that an append between two reads
        cannot make its own rows look like rows added by hand); None when there is none."""
        with self._recorder._cursor(write=False) as cursor:
            cursor.execute(
                self._recorder._sql(
                    "SELECT MIN(m.position) FROM {merkle} m "
                    "WHERE m.position > (SELECT COALESCE(MAX(c.position), 0) FROM {chain} c)"
                )
            )
            row = cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else None

    # Keeping it whole.

    def stored_size(self) -> int:
        """The last position with a row (0 for none)."""
        with self._recorder._cursor(write=False) as cursor:
            return self.stored_size_in(cursor)

    def stored_size_in(self, cursor: Any) -> int:
        cursor.execute(self._recorder._sql("SELECT MAX(position) FROM {merkle}"))
        row = cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def complete(self, *, rebuild: bool = False) -> int:
        """Add the rows the log has and the table lacks at its end (all of them with `rebuild`, after
        deleting every row), under the write lock; the number of rows written.

        Run at every open: a ledger made before the tree existed gets it, once (7.8 s for the city's million
        events on SQLite); otherwise two reads find the table at the head, and no lock is taken.
        An append that finds the table behind completes it too (`rows_for_append`).
        """
        recorder = self._recorder
        if not rebuild and self.stored_size() == recorder.head().position:
            return 0
        with recorder.append_session() as cursor:
            if rebuild:
                cursor.execute(recorder._sql("DELETE FROM {merkle}"))
                self._frontier = None
            written = self._complete_in(cursor, recorder._read_head(cursor).position)[1]
        return written

    def _complete_in(self, cursor: Any, head: int) -> tuple[Frontier, int]:
        """Inside the append transaction: bring the table to `head` from the log; the frontier at `head`
        and the number of rows written. Rows past the log (a log cut back, rows added by hand) go."""
        recorder = self._recorder
        stored = self.stored_size_in(cursor)
        if stored > head:
            cursor.execute(recorder._sql("DELETE FROM {merkle} WHERE position > ?"), (head,))
            logger.warning(
                "the Merkle tree had rows past the log's head %d (a log cut back?); removed them", head
            )
            self._frontier = None
            stored = head
        frontier = self._frontier_at(cursor, stored)
        written = 0
        while frontier.size < head:
            cursor.execute(
                recorder._sql(
                    # Bounded by `head`: inside an append the batch's own rows are already written.
                    "SELECT e.{pos}, c.recorded_at, e.state FROM {events} e JOIN {chain} c "
                    "ON c.position = e.{pos} WHERE e.{pos} > ? AND c.position > ? AND e.{pos} <= ? "
                    "ORDER BY e.{pos} LIMIT ?"
                ),
                (frontier.size, frontier.size, head, MERKLE_PAGE_ROWS),
            )
            page = cursor.fetchall()
            rows = []
            for position, recorded_at, state in page:
                if position != frontier.size + 1:
                    break
                leaf = canonical_bytes(position, recorded_at, bytes(state))
                rows.append((position, b"".join(frontier.append(leaf_hash(leaf)))))
            if rows:
                recorder._insert_tree_rows(cursor, rows)
                written += len(rows)
            if len(rows) < len(page) or not page:
                raise IntegrityFailure(
                    f"position {frontier.size + 1} is missing from the log: the Merkle tree cannot be "
                    "completed; run `ledger verify`",
                    position=frontier.size + 1,
                    reason="missing",
                )
        if written:
            logger.warning("added %d rows to the Merkle tree (ledger_merkle) from the log", written)
        return frontier, written
