"""Proofs an auditor checks alone: one event's inclusion in a tree head, one tree head extending another.

Both come from the stored Merkle tree (`ledger.store.tree`): O(log n) stored hashes, no rehashing of the
log. The documents are RFC 9162's (§2.1.3, §2.1.4) with hashes in lowercase hex; `ledger-verify` checks
them against checkpoints with no database (`ledger_verify.merkle` is the one definition both sides run).
"""

from __future__ import annotations

from ledger.domain.errors import IntegrityFailure, InvalidInput
from ledger.integrity.chain import canonical_bytes
from ledger.results import ConsistencyProof, InclusionProof
from ledger.store.recorders import LedgerRecorder

__all__ = ["Proofs"]


class Proofs:
    """Inclusion and consistency proofs over one recorder's log."""

    def __init__(self, recorder: LedgerRecorder) -> None:
        self._recorder = recorder

    def _size(self, value: int | None, field: str, head: int) -> int:
        """A tree size: at most the head (the head when None), at least 1."""
        if value is None:
            if head == 0:
                raise InvalidInput(
                    "the log is empty: there is no tree to prove against",
                    field=field,
                    rule="tree_size_out_of_range",
                )
            return head
        if not 1 <= value <= head:
            raise InvalidInput(
                f"{field} {value} is not a size of this log's tree: it holds 1 to {head} events",
                field=field,
                rule="tree_size_out_of_range",
            )
        return value

    def inclusion(self, position: int, tree_size: int | None = None) -> InclusionProof:
        """The inclusion proof of the event at `position` in the tree of `tree_size` leaves (the head's
        when None); InvalidInput naming the field when either is out of range."""
        size = self._size(tree_size, "tree_size", self._recorder.head().position)
        if not 1 <= position <= size:
            raise InvalidInput(
                f"position {position} is not in the tree of {size} events: it must be 1 to {size}",
                field="position",
                rule="position_out_of_range",
            )
        row = self._recorder.event_at(position)
        if row is None:  # within the log's size, yet no event: a row deleted by hand
            raise IntegrityFailure(
                f"the log has no event at position {position} although it holds {size}: a row was deleted; "
                "run `ledger verify`",
                position=position,
                reason="missing",
            )
        _position, state, recorded_at, _hash = row
        try:
            leaf = canonical_bytes(position, recorded_at, state).decode()
        except (UnicodeDecodeError, ValueError):
            raise IntegrityFailure(
                f"the stored event at position {position} is not UTF-8 JSON: it was altered; "
                "run `ledger verify`",
                position=position,
                reason="altered",
            ) from None
        proof = self._recorder.tree.inclusion(position - 1, size)
        assert proof.leaf_hash is not None
        return InclusionProof(
            position=position,
            tree_size=size,
            leaf_hash=proof.leaf_hash.hex(),
            root_hash=proof.roots[0].hex(),
            audit_path=[hash_.hex() for hash_ in proof.hashes],
            leaf=leaf,
        )

    def consistency(self, first: int, second: int | None = None) -> ConsistencyProof:
        """The consistency proof from the tree of `first` leaves to the tree of `second` (the head's when
        None): 1 ≤ first ≤ second ≤ head, else InvalidInput naming the field."""
        head = self._recorder.head().position
        second_size = self._size(second, "second", head)
        if not 1 <= first <= second_size:
            raise InvalidInput(
                f"first {first} must be 1 to second ({second_size}): a tree extends only a smaller one",
                field="first",
                rule="tree_size_out_of_range",
            )
        proof = self._recorder.tree.consistency(first, second_size)
        return ConsistencyProof(
            first=first,
            second=second_size,
            first_root=proof.roots[0].hex(),
            second_root=proof.roots[1].hex(),
            proof=[hash_.hex() for hash_ in proof.hashes],
        )
