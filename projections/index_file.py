"""The persisted index's file format: how `mapped.py` lays an index out in one file, and reads it back.

Layout (integers little-endian): the magic (16 bytes), the header's SHA-256 (32), its offset (8) and length
(8); from byte 4096 the regions, each at a multiple of 4096 — one per column of the index (its rows, then
room to append into, left as a hole in the file), the facts' stream (their MessagePack encodings in position
order, as `FactsDigest` hashes them) and the parts beside the columns (MessagePack); then the header
(MessagePack: the binding, and each region's name, dtype, offset, rows, capacity and SHA-256 digest; the
stream's digest is the facts digest itself).

Reading checks the file against itself — the header's digest, each region where a region may lie, the
digest of every region's used bytes (in threads: hashlib releases the GIL), the stream against the facts
digest the header binds — and maps the columns copy-on-write (`mmap.ACCESS_COPY`): what the process then
appends or marks lands in pages of its own, never in the file.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import msgspec
import numpy as np

from ledger.projections.facts import Fact
from ledger.projections.index import Cadre, Index

__all__ = ["INDEX_FORMAT", "Binding", "IndexUnusable", "read_index", "write_index"]

# The layout of the file; bump it when the regions or the parts change (a file of another format is not
# used, and is replaced).
INDEX_FORMAT: Final = 2  # 2: units' ratings (a column group) and their parts
MAGIC: Final = b"cadre-ledger-idx"
PREFIX: Final = struct.Struct("<16s32sQQ")
ALIGN: Final = 4096
# Room to append into after each column's rows, as a hole in the file: a process folds the tail after the
# file's position into it without copying the mapped columns. The writer's bound (see service.py) renews
# the file well before the room of the large columns runs out; a column that outgrows it is copied.
HEADROOM_MIN_ROWS: Final = 1024
HEADROOM_SHARE: Final = 8
HASH_THREADS: Final = 4
STREAM: Final = "stream"
PARTS: Final = "parts"


class Binding(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a persisted index was folded from: this ledger's version `version` of the read models, in facts
    format `facts_format`, through log position `position`, whose chain hash is `log_hash`, with the digest
    of the facts through it `facts_digest`."""

    ledger_id: str
    version: int
    facts_format: int
    position: int
    log_hash: bytes
    facts_digest: bytes


class Region(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    name: str
    dtype: str
    offset: int
    rows: int
    capacity: int
    digest: bytes


class Header(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    index_format: int
    binding: Binding
    regions: list[Region]


class Parts(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """The index beside its columns: few items (cadres, units, policies, sparse facts, reversals)."""

    cadres: list[tuple[str, str, int, int, int, bool, bool]]
    unit_ids: list[str]
    policies: list[Fact]
    sparse: list[Fact]
    sparse_reversed_at: list[tuple[int, int]]
    reversed_rows: list[int]
    veto_years: list[tuple[int, list[int]]]
    veto_candidates: list[int]
    appraisal_sensitive: list[int]
    period_ids: list[str]
    rater_ids: list[str]
    unit_registrations: list[Fact]
    panels: list[Fact]


_header_decoder = msgspec.msgpack.Decoder(Header)
_parts_decoder = msgspec.msgpack.Decoder(Parts)
_encoder = msgspec.msgpack.Encoder()


class IndexUnusable(Exception):
    """A persisted index that must not be served: why (`what`), and whether the log disagrees with it
    (`critical`) rather than the file being damaged, stale or of another kind."""

    def __init__(self, what: str, *, critical: bool = False) -> None:
        super().__init__(what)
        self.what = what
        self.critical = critical


def write_index(file: Any, binding: Binding, index: Index, stream: Sequence[Any]) -> None:
    """Write `index` (folded through `binding.position`; `stream`, its facts' encoding, in chunks) to
    `file`, opened for writing at its start."""
    regions = _write_regions(file, index, stream, binding.facts_digest)
    header = _encoder.encode(Header(INDEX_FORMAT, binding, regions))
    offset = _aligned(file.seek(0, os.SEEK_END))
    file.seek(offset)
    file.write(header)
    file.seek(0)
    file.write(PREFIX.pack(MAGIC, hashlib.sha256(header).digest(), offset, len(header)))


def read_index(mapped: mmap.mmap, size: int, *, verify: bool) -> tuple[Index, Binding, Any, memoryview]:
    """The index a mapped file of `size` bytes holds, its binding, the running SHA-256 of its facts'
    stream (the facts digest at the binding's position, to continue) and the stream; IndexUnusable if the
    file does not hold a whole index. `verify=False` skips the digests of the regions but the stream's."""
    header = _header_of(mapped, size)
    regions = _checked_regions(header, size)
    region = regions[STREAM]
    stream = memoryview(mapped)[region.offset : region.offset + region.rows]
    # Hashed in threads, the stream (the largest region) beside the others: hashlib releases the GIL.
    with ThreadPoolExecutor(max_workers=HASH_THREADS) as pool:
        hashing = pool.submit(hashlib.sha256, stream)
        if verify:
            _check_digests(mapped, regions, pool)
        running = hashing.result()
    if running.digest() != header.binding.facts_digest:
        raise IndexUnusable("its facts' stream does not hash to the facts digest it binds")
    try:
        index = _restored(mapped, regions, header.binding.position)
    except IndexUnusable:
        raise
    except Exception as error:  # a file whose digests were recomputed over parts that do not fit
        raise IndexUnusable(f"the index does not restore ({type(error).__name__}: {error})") from None
    return index, header.binding, running, stream


def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


def _column_names(index: Index) -> dict[str, Any]:
    """Every array region's name and dtype: `<group>.<column>`."""
    return {
        f"{group}.{name}": np.dtype(dtype)
        for group, columns in index.columns().items()
        for name, dtype in columns.dtypes.items()
    }


def _parts_of(index: Index) -> bytes:
    return _encoder.encode(
        Parts(
            [
                (
                    cadre.cadre_id,
                    cadre.name,
                    cadre.position,
                    cadre.registered_day,
                    cadre.service_started_day,
                    cadre.leadership,
                    cadre.principal,
                )
                for cadre in index.cadres
            ],
            list(index.unit_ids),
            list(index.policy_facts),
            [index.sparse[position] for position in sorted(index.sparse)],
            sorted(index.sparse_reversed_at.items()),
            list(index.reversed_rows),
            sorted((code, sorted(years)) for code, years in index.veto_years.items()),
            sorted(index.veto_candidates),
            sorted(index.appraisal_sensitive),
            list(index.rated.period_ids),
            list(index.rated.rater_ids),
            list(index.rated.registrations),
            list(index.rated.panels),
        )
    )


def _write_regions(file: Any, index: Index, stream: Sequence[Any], facts_digest: bytes) -> list[Region]:
    """Write every region from byte ALIGN on; their entries for the header."""
    regions: list[Region] = []
    offset = ALIGN
    for group, columns in index.columns().items():
        rows = columns.size
        capacity = rows + max(HEADROOM_MIN_ROWS, rows // HEADROOM_SHARE)
        for name, dtype in columns.dtypes.items():
            data = np.ascontiguousarray(columns[name]).data.cast("B")
            file.seek(offset)
            file.write(data)
            regions.append(
                Region(
                    f"{group}.{name}",
                    np.dtype(dtype).str,
                    offset,
                    rows,
                    capacity,
                    hashlib.sha256(data).digest(),
                )
            )
            offset = _aligned(offset + capacity * np.dtype(dtype).itemsize)
    file.seek(offset)
    length = 0
    for chunk in stream:
        length += file.write(chunk)
    # The stream's digest is the facts digest itself (checked at open by hashing the stream).
    regions.append(Region(STREAM, "|u1", offset, length, length, facts_digest))
    offset = _aligned(offset + length)
    parts = _parts_of(index)
    file.seek(offset)
    file.write(parts)
    regions.append(Region(PARTS, "|u1", offset, len(parts), len(parts), hashlib.sha256(parts).digest()))
    return regions


def _header_of(mapped: mmap.mmap, size: int) -> Header:
    magic, digest, offset, length = PREFIX.unpack_from(mapped, 0)
    if magic != MAGIC:
        raise IndexUnusable("it is not a persisted index (or of another layout)")
    if offset < ALIGN or offset + length > size:
        raise IndexUnusable(f"it is truncated: its header lies beyond its {size} bytes")
    header = mapped[offset : offset + length]
    if hashlib.sha256(header).digest() != digest:
        raise IndexUnusable("its header does not match its digest (altered)")
    try:
        decoded = _header_decoder.decode(header)
    except msgspec.MsgspecError as error:
        raise IndexUnusable(f"its header does not decode ({error})") from None
    if decoded.index_format != INDEX_FORMAT:
        raise IndexUnusable(f"it is of index format {decoded.index_format}, not {INDEX_FORMAT}")
    return decoded


def _checked_regions(header: Header, size: int) -> dict[str, Region]:
    """The regions by name, each where a region may lie: every column of the index, the stream and the
    parts, each of its dtype, aligned, within the file and apart from the others."""
    expected = {**_column_names(Index()), STREAM: np.dtype("u1"), PARTS: np.dtype("u1")}
    regions = {region.name: region for region in header.regions}
    if set(regions) != set(expected) or len(regions) != len(header.regions):
        raise IndexUnusable("it does not hold the regions of this index's columns")
    end = ALIGN
    for region in sorted(header.regions, key=lambda region: region.offset):
        dtype = expected[region.name]
        if (
            region.dtype != dtype.str
            or region.offset % ALIGN
            or region.offset < end
            or not 0 <= region.rows <= region.capacity
            or region.offset + region.capacity * dtype.itemsize > size
        ):
            raise IndexUnusable(f"region {region.name} is not where its header says (truncated?)")
        end = region.offset + region.capacity * dtype.itemsize
    return regions


def _check_digests(mapped: mmap.mmap, regions: dict[str, Region], pool: ThreadPoolExecutor) -> None:
    """The SHA-256 of every region but the stream (checked by the caller against the facts digest)."""
    view = memoryview(mapped)
    checked = [region for name, region in regions.items() if name != STREAM]

    def matches(region: Region) -> bool:
        length = region.rows * np.dtype(region.dtype).itemsize
        return hashlib.sha256(view[region.offset : region.offset + length]).digest() == region.digest

    results = list(pool.map(matches, checked))
    for region, ok in zip(checked, results, strict=True):
        if not ok:
            raise IndexUnusable(f"region {region.name} does not match its digest (altered)")


def _restored(mapped: mmap.mmap, regions: dict[str, Region], position: int) -> Index:
    """The index the regions hold: columns mapped copy-on-write, the parts decoded and re-linked."""
    index = Index()
    for group, columns in index.columns().items():
        arrays = {}
        rows = set()
        for name, dtype in columns.dtypes.items():
            region = regions[f"{group}.{name}"]
            arrays[name] = np.frombuffer(mapped, dtype=dtype, count=region.capacity, offset=region.offset)
            rows.add(region.rows)
        if len(rows) != 1:
            raise IndexUnusable(f"the columns of {group} disagree on their number of rows")
        columns.adopt(arrays, rows.pop())
    region = regions[PARTS]
    parts = _parts_decoder.decode(memoryview(mapped)[region.offset : region.offset + region.rows])
    index.position = position
    for fact in parts.policies:
        index.add_policy(fact)
    if len(parts.cadres) != index.registrations.size:
        raise IndexUnusable("the cadres do not match the registrations' column")
    for code, (
        cadre_id,
        name,
        registered_at,
        registered_day,
        started_day,
        leadership,
        principal,
    ) in enumerate(parts.cadres):
        index.cadres.append(
            Cadre(code, cadre_id, name, registered_at, registered_day, started_day, leadership, principal)
        )
        index.cadre_codes[cadre_id] = code
    index.unit_ids = list(parts.unit_ids)
    index.unit_codes = {unit_id: code for code, unit_id in enumerate(parts.unit_ids)}
    for fact in parts.sparse:
        index.sparse[fact.position] = fact
        index.cadres[index.cadre_codes[fact.cadre]].sparse.append(fact)  # type: ignore[index]
    index.sparse_reversed_at = dict(parts.sparse_reversed_at)
    scores = index.scores.size
    if any(not 0 <= row < scores for row in (*parts.reversed_rows, *parts.veto_candidates)):
        raise IndexUnusable("a reversed row or a veto candidate lies outside the score columns")
    index.reversed_rows = list(parts.reversed_rows)
    index.veto_years = {code: set(years) for code, years in parts.veto_years}
    index.veto_candidates = set(parts.veto_candidates)
    index.appraisal_sensitive = set(parts.appraisal_sensitive)
    index.rated.restore(parts.period_ids, parts.rater_ids, parts.unit_registrations, parts.panels)
    ratings = index.rated.ratings
    if ratings.size and (
        int(ratings["unit"].max()) >= len(index.unit_ids)
        or int(ratings["period"].max()) >= len(parts.period_ids)
        or int(ratings["rater"].max()) >= len(parts.rater_ids)
    ):
        raise IndexUnusable("a rating names a unit, period or rater the index does not hold")
    return index
