"""Golden vectors: `ledger_verify.merkle` against the RFC 6962 / 9162 reference vectors and a naive MTH.

The eight leaves, the tree heads of sizes 1–8 and the inclusion and consistency proofs are the vectors
Google's Certificate Transparency code has used since RFC 6962, as kept in transparency-dev/merkle:

- `proof/verify_test.go` (https://github.com/transparency-dev/merkle/blob/
  02194e9afb6c1d95b5381350007963aa70fff472/proof/verify_test.go): `leaves`, `roots`, `inclusionProofs`
  (leaf numbers there are 1-based), `consistencyProofs`, and the corruptions of `corruptInclusionProof` /
  `corruptConsistencyProof` that must not verify;
- `rfc6962/rfc6962_test.go` (same repository, commit 78493b07ef9b552e3379abf9e23d4da26fbe797c): the
  empty root, the empty leaf, the leaf "L123456" and the node of "N123" and "N456".

If one of these fails, merkle.py no longer computes RFC 9162's tree: every proof the ledger gives would
stop verifying with any other implementation. The larger sizes (100, 1000, 1024, 1025) are checked
against a recursive MTH written here straight from RFC 9162 §2.1.1, and pinned.
"""

from __future__ import annotations

import hashlib

import pytest

from ledger_verify import merkle

# transparency-dev/merkle proof/verify_test.go: `leaves`.
LEAVES = [
    bytes.fromhex(text)
    for text in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
# `roots`: MTH of the first 1, 2, …, 8 leaves.
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
EMPTY_TREE = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
# `inclusionProofs`: (leaf number, 1-based; tree size; audit path).
INCLUSION = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        2,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# `consistencyProofs`: (first size, second size, proof).
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


def naive_mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 9162 §2.1.1 writes it, recursively, with nothing shared with merkle.py."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:])).digest()


def subtree_hashes(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every perfect subtree `(level, index)` over `leaves`, each by the naive MTH of its leaves."""
    hashes = {}
    level = 0
    while 1 << level <= len(leaves):
        size = 1 << level
        for index in range(len(leaves) // size):
            hashes[(level, index)] = naive_mth(leaves[index * size : (index + 1) * size])
        level += 1
    return hashes


def frontier_root(leaves: list[bytes]) -> bytes:
    frontier = merkle.Frontier()
    for leaf in leaves:
        frontier.append(merkle.leaf_hash(leaf))
    return frontier.root()


def test_the_hashes_match_the_rfc6962_hasher_vectors() -> None:
    assert merkle.EMPTY_ROOT.hex() == EMPTY_TREE
    assert merkle.leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert (
        merkle.leaf_hash(b"L123456").hex()
        == "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert (
        merkle.node_hash(b"N123", b"N456").hex()
        == "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )


def test_the_tree_heads_of_sizes_0_to_8_are_the_reference_roots() -> None:
    assert merkle.Frontier().root().hex() == EMPTY_TREE
    stored = subtree_hashes(LEAVES)
    for size in range(1, 9):
        assert frontier_root(LEAVES[:size]).hex() == ROOTS[size - 1], f"size {size}"
        assert merkle.range_hash(0, size, stored).hex() == ROOTS[size - 1], f"size {size}"
        assert naive_mth(LEAVES[:size]).hex() == ROOTS[size - 1], "the naive model itself"


@pytest.mark.parametrize(("number", "size", "path"), INCLUSION)
def test_inclusion_proofs_are_the_reference_paths_and_verify(number: int, size: int, path: list[str]) -> None:
    index = number - 1
    stored = subtree_hashes(LEAVES)
    made = merkle.hashes_of(merkle.inclusion_ranges(index, size), lambda _wanted: stored)
    assert [hash_.hex() for hash_ in made] == path
    proof = [bytes.fromhex(hash_) for hash_ in path]
    root = bytes.fromhex(ROOTS[size - 1])
    leaf = merkle.leaf_hash(LEAVES[index])
    assert merkle.verify_inclusion(index, size, leaf, proof, root)


@pytest.mark.parametrize(("number", "size", "path"), INCLUSION)
def test_corrupted_inclusion_proofs_do_not_verify(number: int, size: int, path: list[str]) -> None:
    """The probes of transparency-dev's corruptInclusionProof: each must fail."""
    index = number - 1
    proof = [bytes.fromhex(hash_) for hash_ in path]
    root = bytes.fromhex(ROOTS[size - 1])
    leaf = merkle.leaf_hash(LEAVES[index])
    empty = merkle.EMPTY_ROOT
    probes = [
        ("index - 1", index - 1, size, root, leaf, proof),
        ("index + 1", index + 1, size, root, leaf, proof),
        ("index ^ 2", index ^ 2, size, root, leaf, proof),
        ("size * 2", index, size * 2, root, leaf, proof),
        ("size / 2", index, size // 2, root, leaf, proof),
        ("wrong leaf", index, size, root, b"WrongLeaf", proof),
        ("empty root", index, size, empty, leaf, proof),
        ("random root", index, size, SOME_HASH, leaf, proof),
        ("trailing garbage", index, size, root, leaf, [*proof, b""]),
        ("trailing root", index, size, root, leaf, [*proof, root]),
        ("preceding garbage", index, size, root, leaf, [b"", *proof]),
        ("preceding root", index, size, root, leaf, [root, *proof]),
    ]
    for position in range(len(proof)):
        flipped = list(proof)
        flipped[position] = bytes([flipped[position][0] ^ 8]) + flipped[position][1:]
        probes.append((f"proof[{position}] bit 3", index, size, root, leaf, flipped))
    if proof:
        probes.append(("removed component", index, size, root, leaf, proof[:-1]))
    if len(proof) > 1:
        probes.append(("inserted component", index, size, root, leaf, [proof[0], SOME_HASH, *proof[1:]]))
    for name, probe_index, probe_size, probe_root, probe_leaf, probe_proof in probes:
        assert not merkle.verify_inclusion(probe_index, probe_size, probe_leaf, probe_proof, probe_root), name


@pytest.mark.parametrize(("first", "second", "path"), CONSISTENCY)
def test_consistency_proofs_are_the_reference_proofs_and_verify(
    first: int, second: int, path: list[str]
) -> None:
    stored = subtree_hashes(LEAVES)
    made = merkle.hashes_of(merkle.consistency_ranges(first, second), lambda _wanted: stored)
    assert [hash_.hex() for hash_ in made] == path
    proof = [bytes.fromhex(hash_) for hash_ in path]
    first_root, second_root = bytes.fromhex(ROOTS[first - 1]), bytes.fromhex(ROOTS[second - 1])
    assert merkle.verify_consistency(first, second, first_root, second_root, proof)


@pytest.mark.parametrize(("first", "second", "path"), [vector for vector in CONSISTENCY if vector[2]])
def test_corrupted_consistency_proofs_do_not_verify(first: int, second: int, path: list[str]) -> None:
    """The probes of transparency-dev's corruptConsistencyProof: each must fail."""
    proof = [bytes.fromhex(hash_) for hash_ in path]
    root1, root2 = bytes.fromhex(ROOTS[first - 1]), bytes.fromhex(ROOTS[second - 1])
    probes = [
        ("first - 1", first - 1, second, root1, root2, proof),
        ("first + 1", first + 1, second, root1, root2, proof),
        ("first ^ 2", first ^ 2, second, root1, root2, proof),
        ("second * 2", first, second * 2, root1, root2, proof),
        ("second / 2", first, second // 2, root1, root2, proof),
        ("wrong first root", first, second, b"WrongRoot", root2, proof),
        ("wrong second root", first, second, root1, b"WrongRoot", proof),
        ("swapped roots", first, second, root2, root1, proof),
        ("empty proof", first, second, root1, root2, []),
        ("trailing garbage", first, second, root1, root2, [*proof, b""]),
        ("trailing first root", first, second, root1, root2, [*proof, root1]),
        ("trailing second root", first, second, root1, root2, [*proof, root2]),
        ("preceding garbage", first, second, root1, root2, [b"", *proof]),
        ("preceding first root", first, second, root1, root2, [root1, *proof]),
        ("preceding second root", first, second, root1, root2, [root2, *proof]),
        ("preceding proof[0]", first, second, root1, root2, [proof[0], *proof]),
        ("truncated proof", first, second, root1, root2, proof[:-1]),
    ]
    for position in range(len(proof)):
        flipped = list(proof)
        flipped[position] = bytes([flipped[position][0] ^ 16]) + flipped[position][1:]
        probes.append((f"proof[{position}] bit 4", first, second, root1, root2, flipped))
    for name, size1, size2, probe_root1, probe_root2, probe_proof in probes:
        assert not merkle.verify_consistency(size1, size2, probe_root1, probe_root2, probe_proof), name


def test_the_edge_cases_of_transparency_devs_verify_consistency() -> None:
    """TestVerifyConsistency's table, for the sizes merkle.py takes (a tree of at least one leaf)."""
    root1, root2 = b"don't care 1", b"don't care 2"
    empty = merkle.EMPTY_ROOT
    assert not merkle.verify_consistency(1, 1, root1, root2, [])
    assert merkle.verify_consistency(1, 1, root2, root2, [])
    assert not merkle.verify_consistency(2, 1, root1, root2, [])
    assert not merkle.verify_consistency(1, 2, root1, root2, [])
    assert not merkle.verify_consistency(1, 1, empty, root2, [])
    assert not merkle.verify_consistency(1, 1, empty, empty, [empty])
    # merkle.py proves nothing from an empty tree (the ledger's proofs start at one event).
    assert not merkle.verify_consistency(0, 1, root1, root2, [])


def test_inclusion_of_a_single_entry_and_impossible_indexes() -> None:
    """TestVerifyInclusionSingleEntry and TestVerifyInclusion's probes."""
    leaf = merkle.leaf_hash(b"data")
    assert merkle.verify_inclusion(0, 1, leaf, [], leaf)
    assert not merkle.verify_inclusion(0, 1, b"", [], leaf)
    assert not merkle.verify_inclusion(0, 1, leaf, [], b"")
    for index, size in ((0, 0), (1, 0), (2, 1), (1, 1)):
        assert not merkle.verify_inclusion(index, size, SOME_HASH, [], b"")
        assert not merkle.verify_inclusion(index, size, b"", [], merkle.EMPTY_ROOT)
        assert not merkle.verify_inclusion(index, size, SOME_HASH, [], merkle.EMPTY_ROOT)


# Larger trees: fixed leaves, roots pinned as computed by `naive_mth` (and checked against it again).
BIG_LEAVES = [f"event {index}".encode() for index in range(1025)]
BIG_ROOTS = {
    100: "e083a168b506e3db1d0a02ab4b178083a35f1d348506dc426a56a1f2ad90ccee",
    1000: "cf3badb8f55ed344d8adee15d32a5b55192dabe2a2c3d0a17e1e4b1ae68e0291",
    1023: "8ce0bff781d2bf6e023ce33d6f4baab70e5d712ce101a5f66fc185fcf9ec0246",
    1024: "4279864abc31e530f3b3b69bf608e1330790ff398cbedc208e44aafbe4b7f55c",
    1025: "64903ea992f06b740e01f67a3826ce92061a1f7c648a9686702ad81262b2c116",
}


@pytest.mark.parametrize("size", sorted(BIG_ROOTS))
def test_the_roots_of_larger_trees_are_the_naive_mth(size: int) -> None:
    leaves = BIG_LEAVES[:size]
    assert naive_mth(leaves).hex() == BIG_ROOTS[size]
    assert frontier_root(leaves).hex() == BIG_ROOTS[size]
    assert merkle.range_hash(0, size, subtree_hashes(leaves)).hex() == BIG_ROOTS[size]
