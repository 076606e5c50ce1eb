"""The Merkle tree over the log, exactly as RFC 9162 §2.1 defines it, and its proofs.

Leaf `i` (0-based) is the canonical bytes of the event at position `i + 1`:

    leaf_hash(leaf)    = SHA-256(0x00 ‖ leaf)
    node_hash(l, r)    = SHA-256(0x01 ‖ l ‖ r)
    MTH({})            = SHA-256()                       (the empty tree)
    MTH({d0})          = leaf_hash(d0)
    MTH(D[0:n])        = node_hash(MTH(D[0:k]), MTH(D[k:n]))   k = the largest power of two < n

A *perfect subtree* `(level, index)` is the complete subtree over the leaves
`[index·2^level, (index+1)·2^level)`. Every hash a root or a proof needs is either a perfect subtree's
hash or the MTH of a range `[start, end)` whose start is a multiple of the range's largest perfect part;
such a range is its perfect subtrees from left to right, biggest first (`perfect_subtrees`), folded from
the right (`range_hash`). So a store that keeps the hash of every perfect subtree answers any root and any
proof from O(log n) stored hashes, without rehashing the log: the proof functions here say which ranges a
proof needs (`inclusion_ranges`, `consistency_ranges`), the store fetches their subtrees, `range_hash`
combines them.

This module is pure (the standard library only): the standalone verifier (`ledger-verify`) and the ledger
share it, so that both sides of a proof run one definition.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "consistency_ranges",
    "hashes_of",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "perfect_subtrees",
    "range_hash",
    "ranges_subtrees",
    "split",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: Final = 32
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()

_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"

Subtree = tuple[int, int]  # (level, index)
Range = tuple[int, int]  # [start, end) in leaf indices


def leaf_hash(leaf: bytes) -> bytes:
    """SHA-256(0x00 ‖ leaf)."""
    digest = hashlib.sha256(_LEAF_PREFIX)
    digest.update(leaf)
    return digest.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def split(size: int) -> int:
    """The largest power of two smaller than `size` (> 1): where MTH splits a range of `size` leaves."""
    if size < 2:
        raise ValueError(f"a range of {size} leaves does not split")
    return 1 << ((size - 1).bit_length() - 1)


def perfect_subtrees(start: int, end: int) -> list[Subtree]:
    """The perfect subtrees `(level, index)` that make up `[start, end)`, left to right.

    The range must be one MTH's recursion reaches (its start a multiple of its largest perfect part, which
    every range of a root or a proof is); any other range is a ValueError.
    """
    if not 0 <= start < end:
        raise ValueError(f"not a range of leaves: [{start}, {end})")
    subtrees: list[Subtree] = []
    while start < end:
        size = end - start
        part = size if size & (size - 1) == 0 else split(size)
        if start % part:
            raise ValueError(f"[{start}, {end}) is not a range of the tree")
        level = part.bit_length() - 1
        subtrees.append((level, start >> level))
        start += part
    return subtrees


def range_hash(start: int, end: int, subtree_hash: Mapping[Subtree, bytes]) -> bytes:
    """MTH(D[start:end]) from the hashes of its perfect subtrees (`subtree_hash[(level, index)]`)."""
    parts = perfect_subtrees(start, end)
    result = subtree_hash[parts[-1]]
    for part in reversed(parts[:-1]):
        result = node_hash(subtree_hash[part], result)
    return result


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The audit path of leaf `index` in the tree of `size` leaves, as the ranges whose MTHs it lists,
    in the RFC's order (the leaf's sibling first): PATH(m, D[n]) of RFC 9162 §2.1.3.1."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    path: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = split(end - start)
        if index < start + k:
            path.append((start + k, end))
            end = start + k
        else:
            path.append((start, start + k))
            start += k
    path.reverse()
    return path


def consistency_ranges(first: int, second: int) -> list[Range]:
    """The consistency proof between the trees of `first` and `second` leaves, as ranges, in the RFC's
    order: PROOF(m, D[n]) = SUBPROOF(m, D[n], true) of RFC 9162 §2.1.4.1 (empty when m = n)."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from {first} to {second} leaves: need 0 < first <= second")
    proof: list[Range] = []
    start, end, m, whole = 0, second, first, True
    while True:
        if m == end - start:
            if not whole:
                proof.append((start, end))
            break
        k = split(end - start)
        if m <= k:
            proof.append((start + k, end))
            end = start + k
        else:
            proof.append((start, start + k))
            start, m, whole = start + k, m - k, False
    proof.reverse()
    return proof


def _shift_while_bit_set(fn: int, sn: int, *, bit_set: bool) -> tuple[int, int]:
    """Right-shift both while LSB(fn) is (or, with bit_set False, is not) set and fn is not 0."""
    while fn != 0 and bool(fn & 1) == bit_set:
        fn >>= 1
        sn >>= 1
    return fn, sn


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> bool:
    """True if `path` proves the leaf hash `leaf` at `index` in the tree of `size` leaves whose root is
    `root`: the algorithm of RFC 9162 §2.1.3.2, step by step."""
    if not 0 <= index < size:
        return False
    fn, sn, result = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            fn, sn = _shift_while_bit_set(fn, sn, bit_set=False)
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True if `proof` shows the tree of `second` leaves (root `second_root`) extends the tree of `first`
    leaves (root `first_root`): the algorithm of RFC 9162 §2.1.4.2, step by step."""
    if not 0 < first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        path.insert(0, first_root)
    if not path:
        return False
    fn, sn = _shift_while_bit_set(first - 1, second - 1, bit_set=True)
    first_result = second_result = path[0]
    for hash_ in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            first_result = node_hash(hash_, first_result)
            second_result = node_hash(hash_, second_result)
            fn, sn = _shift_while_bit_set(fn, sn, bit_set=False)
        else:
            second_result = node_hash(second_result, hash_)
        fn >>= 1
        sn >>= 1
    return sn == 0 and first_result == first_root and second_result == second_root


class Frontier:
    """The right edge of a growing tree: the perfect subtrees of `[0, size)`, biggest first.

    `append` adds one leaf hash and returns the hashes of the perfect subtrees it completes, by level
    (the leaf itself at level 0, then each node it closes); `root` is MTH(D[0:size]). This is how the
    ledger keeps the tree in the append and how a verifier rebuilds it from an export, in O(log n) memory.
    """

    __slots__ = ("_hashes", "_levels", "size")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        """A frontier of `size` leaves from the hashes of `perfect_subtrees(0, size)`, in that order."""
        self.size = size
        self._hashes = list(hashes)
        self._levels = [level for level, _index in perfect_subtrees(0, size)] if size else []
        if len(self._hashes) != len(self._levels):
            raise ValueError(f"a tree of {size} leaves has {len(self._levels)} subtrees on its right edge")

    def append(self, leaf: bytes) -> list[bytes]:
        """Add the leaf hash `leaf`; the hashes it completes, level 0 first."""
        levels, hashes = self._levels, self._hashes
        completed = [leaf]
        level, current = 0, leaf
        while levels and levels[-1] == level:
            levels.pop()
            current = node_hash(hashes.pop(), current)
            level += 1
            completed.append(current)
        levels.append(level)
        hashes.append(current)
        self.size += 1
        return completed

    def root(self) -> bytes:
        """MTH(D[0:size])."""
        if not self._hashes:
            return EMPTY_ROOT
        result = self._hashes[-1]
        for hash_ in reversed(self._hashes[:-1]):
            result = node_hash(hash_, result)
        return result

    def subtrees(self) -> list[bytes]:
        """The hashes of `perfect_subtrees(0, size)`, biggest first (what the constructor takes)."""
        return list(self._hashes)


def ranges_subtrees(ranges: Iterable[Range]) -> set[Subtree]:
    """Every perfect subtree the MTHs of `ranges` need (what a store fetches for a proof)."""
    return {subtree for start, end in ranges for subtree in perfect_subtrees(start, end)}


def hashes_of(
    ranges: Iterable[Range], fetch: Callable[[set[Subtree]], Mapping[Subtree, bytes]]
) -> list[bytes]:
    """The MTHs of `ranges`, from one fetch of all the perfect subtrees they need."""
    ranges = list(ranges)
    fetched = fetch(ranges_subtrees(ranges))
    return [range_hash(start, end, fetched) for start, end in ranges]
