"""Merkle proofs against a deliberately naive model: every (m, n) up to 64 leaves, then hypothesis.

merkle.py answers a proof the way the ledger's store does: the proof's ranges (`inclusion_ranges`,
`consistency_ranges`), each folded from stored perfect-subtree hashes (`range_hash`). The model here
recomputes whole trees with the recursion of RFC 9162 §2.1 — MTH, PATH (§2.1.3.1), SUBPROOF (§2.1.4.1) —
on lists of leaves, sharing nothing with merkle.py. The two must give the same hashes, the proofs must
verify (§2.1.3.2, §2.1.4.2), and what a proof must not survive must break it: another index, a tree of
another height, one flipped bit, one altered leaf.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_verify import merkle

Stored = dict[tuple[int, int], bytes]


# The naive model.


def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = largest_power_of_two_below(len(leaves))
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n])."""
    if len(leaves) == 1:
        return []
    k = largest_power_of_two_below(len(leaves))
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if complete else [mth(leaves)]
    k = largest_power_of_two_below(n)
    if m <= k:
        return [*subproof(m, leaves[:k], complete), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def stored_of(leaves: list[bytes]) -> Stored:
    """What the ledger's store keeps: the hash of every perfect subtree, each recomputed naively."""
    stored: Stored = {}
    level = 0
    while 1 << level <= len(leaves):
        size = 1 << level
        for index in range(len(leaves) // size):
            stored[(level, index)] = mth(leaves[index * size : (index + 1) * size])
        level += 1
    return stored


# merkle.py, as the store uses it.


def fetcher(stored: Mapping[tuple[int, int], bytes], size: int) -> Callable[[set[tuple[int, int]]], Stored]:
    """A fetch that refuses any subtree reaching past `size` leaves (a store has none yet)."""

    def fetch(wanted: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        for level, index in wanted:
            assert (index + 1) << level <= size, f"subtree {(level, index)} is not inside {size} leaves"
        return {subtree: stored[subtree] for subtree in wanted}

    return fetch


def inclusion_proof(index: int, size: int, stored: Stored) -> list[bytes]:
    return merkle.hashes_of(merkle.inclusion_ranges(index, size), fetcher(stored, size))


def consistency_proof(first: int, second: int, stored: Stored) -> list[bytes]:
    return merkle.hashes_of(merkle.consistency_ranges(first, second), fetcher(stored, second))


def flipped(proof: list[bytes], position: int, bit: int) -> list[bytes]:
    changed = list(proof)
    byte = bit // 8
    changed[position] = (
        changed[position][:byte]
        + bytes([changed[position][byte] ^ (1 << bit % 8)])
        + changed[position][byte + 1 :]
    )
    return changed


LEAVES = [bytes([index]) * (index % 7) for index in range(64)]  # lengths 0–6, the empty leaf among them
STORED = stored_of(LEAVES)
ROOTS = {size: mth(LEAVES[:size]) for size in range(1, 65)}
LEAF_HASHES = [merkle.leaf_hash(leaf) for leaf in LEAVES]


def test_every_inclusion_proof_up_to_64_leaves_is_the_naive_path_and_verifies() -> None:
    for size in range(1, 65):
        assert merkle.range_hash(0, size, STORED) == ROOTS[size]
        for index in range(size):
            proof = inclusion_proof(index, size, STORED)
            assert proof == path(index, LEAVES[:size]), (index, size)
            assert merkle.verify_inclusion(index, size, LEAF_HASHES[index], proof, ROOTS[size])


def test_every_consistency_proof_for_1_le_m_le_n_le_64_is_the_naive_subproof_and_verifies() -> None:
    for second in range(1, 65):
        for first in range(1, second + 1):
            proof = consistency_proof(first, second, STORED)
            assert proof == subproof(first, LEAVES[:second], True), (first, second)
            assert merkle.verify_consistency(first, second, ROOTS[first], ROOTS[second], proof)


def test_an_inclusion_proof_fails_for_another_index_or_one_flipped_bit() -> None:
    for size in range(1, 65):
        for index in range(size):
            proof = inclusion_proof(index, size, STORED)
            leaf, root = LEAF_HASHES[index], ROOTS[size]
            for other in range(-1, size + 1):
                if other != index:
                    assert not merkle.verify_inclusion(other, size, leaf, proof, root), (index, other, size)
            for position in range(len(proof)):
                for bit in (0, 7, 100, 255):
                    changed = flipped(proof, position, bit)
                    assert not merkle.verify_inclusion(index, size, leaf, changed, root)
            if proof:
                assert not merkle.verify_inclusion(index, size, leaf, proof[:-1], root)
            assert not merkle.verify_inclusion(index, size, leaf, [*proof, root], root)


def test_an_inclusion_proof_fails_for_a_tree_of_another_height() -> None:
    """The path binds the tree's height, not its exact size: RFC 9162 authenticates the size with the
    signed tree head, which is why `ledger-verify` holds `tree_size` to the checkpoint's. A size of the
    same height can pass (shown below), any other height fails."""
    for size in range(1, 65):
        for index in range(size):
            proof = inclusion_proof(index, size, STORED)
            for other in range(1, 130):
                if (other - 1).bit_length() != (size - 1).bit_length():
                    assert not merkle.verify_inclusion(index, other, LEAF_HASHES[index], proof, ROOTS[size])
    same_height = inclusion_proof(0, 5, STORED)
    assert merkle.verify_inclusion(0, 6, LEAF_HASHES[0], same_height, ROOTS[5])


def test_a_consistency_proof_fails_for_another_first_size_another_height_or_one_flipped_bit() -> None:
    for second in range(1, 65):
        for first in range(1, second + 1):
            proof = consistency_proof(first, second, STORED)
            root1, root2 = ROOTS[first], ROOTS[second]
            for other in range(0, second + 2):
                if other != first:
                    assert not merkle.verify_consistency(other, second, root1, root2, proof)
            for other in range(1, 130):
                if (other - 1).bit_length() != (second - 1).bit_length():
                    assert not merkle.verify_consistency(first, other, root1, root2, proof)
            for position in range(len(proof)):
                for bit in (0, 7, 100, 255):
                    assert not merkle.verify_consistency(
                        first, second, root1, root2, flipped(proof, position, bit)
                    )
            if first < second:
                assert not merkle.verify_consistency(first, second, root2, root1, proof)
                assert not merkle.verify_consistency(first, second, root1, root2, proof[:-1])


# Hypothesis: the tree grown one leaf at a time, as the ledger's append does.

leaves_strategy = st.lists(st.binary(max_size=12), min_size=1, max_size=80)


@settings(deadline=None)
@given(leaves=leaves_strategy, data=st.data())
def test_append_then_prove_matches_the_naive_tree_at_every_size(
    leaves: list[bytes], data: st.DataObject
) -> None:
    frontier = merkle.Frontier()
    stored: Stored = {}
    for count, leaf in enumerate(leaves, start=1):
        completed = frontier.append(merkle.leaf_hash(leaf))
        # The leaf closes subtrees level 0, 1, …: the one at level l is the l-th ancestor of leaf count-1.
        for level, hash_ in enumerate(completed):
            stored[(level, (count - 1) >> level)] = hash_
        root = mth(leaves[:count])
        assert frontier.root() == root
        assert merkle.range_hash(0, count, stored) == root
        index = data.draw(st.integers(0, count - 1), label="leaf")
        proof = inclusion_proof(index, count, stored)
        assert proof == path(index, leaves[:count])
        assert merkle.verify_inclusion(index, count, merkle.leaf_hash(leaves[index]), proof, root)
        first = data.draw(st.integers(1, count), label="first")
        proof = consistency_proof(first, count, stored)
        assert proof == subproof(first, leaves[:count], True)
        assert merkle.verify_consistency(first, count, mth(leaves[:first]), root, proof)
    resumed = merkle.Frontier(frontier.size, frontier.subtrees())
    assert resumed.root() == frontier.root()
    extra = merkle.leaf_hash(b"one more")
    assert resumed.append(extra) == frontier.append(extra)
    assert resumed.root() == frontier.root() == mth([*leaves, b"one more"])


@settings(deadline=None)
@given(leaves=st.lists(st.binary(max_size=8), min_size=1, max_size=40), data=st.data())
def test_tampering_with_one_leaf_breaks_every_proof_that_covers_it(
    leaves: list[bytes], data: st.DataObject
) -> None:
    """The log altered at leaf `altered` gives proofs from its own stored hashes; held to the honest tree
    heads they fail: every inclusion proof in a tree that holds the leaf, every consistency proof to an
    honest tree that holds it, and every consistency proof from an honest tree that holds it to the
    altered log's heads."""
    size = len(leaves)
    altered = data.draw(st.integers(0, size - 1), label="altered leaf")
    tampered = list(leaves)
    tampered[altered] = leaves[altered] + b"\xff"
    honest_roots = {n: mth(leaves[:n]) for n in range(1, size + 1)}
    tampered_roots = {n: mth(tampered[:n]) for n in range(1, size + 1)}
    forged = stored_of(tampered)
    for n in range(altered + 1, size + 1):
        for index in range(n):
            leaf = merkle.leaf_hash(tampered[index])
            proof = inclusion_proof(index, n, forged)
            assert not merkle.verify_inclusion(index, n, leaf, proof, honest_roots[n]), (index, n)
        for first in range(1, n + 1):
            proof = consistency_proof(first, n, forged)
            # The honest second tree holds the altered leaf: from the altered log's own first head, no.
            assert not merkle.verify_consistency(first, n, tampered_roots[first], honest_roots[n], proof)
            if altered < first:
                # The honest first tree holds it: the altered log's head does not extend it.
                assert not merkle.verify_consistency(first, n, honest_roots[first], tampered_roots[n], proof)
            else:
                # A change after the first tree is an ordinary extension of it: only the second head shows it.
                assert merkle.verify_consistency(first, n, honest_roots[first], tampered_roots[n], proof)
