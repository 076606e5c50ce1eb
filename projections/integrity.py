"""Checking the read models against the log: what `ledger verify --read-models` and
`GET /v1/audit/verify?read_models=true` report.

The read models are derived data and the log decides. `read_model_findings` refolds the whole log into
facts (`facts_of_stored`, as a rebuild does, without reading any persisted fact) and walks them beside the
rows of the current version's facts table, in position order. The first row that differs is reported with
its position and the first column that differs (`cents: stored 524353, log 24353`); a row the log gives
and the table lacks is `missing`, a row the table holds that the log does not give (or beyond the tracked
position) is `inserted`. The tracking row is held to the log: its position within the log, its `log_hash`
the log's hash there, its digest that of the facts. Given the standings of a serving process's in-memory
index, they are compared with the standings of the refold at the same position (`index_mismatch`).
The rows of `projection_meta` are held to what the ledger writes: a `current_version` that is a version
number with a tracking row or facts table, a `facts_format` of this ledger's shape, an `upgrade_claim` only
while its claimant refreshes it.

Each table reports its first difference only: one is enough to refuse the read models, and `ledger
rebuild` (or a restart, which checks the digest) repairs every one.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import time
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any, Final

import msgspec

from ledger.ledger import Ledger
from ledger.projections.errors import ReadModelsDamaged
from ledger.projections.facts import COMPONENTS, FACTS_FORMAT, Fact, FactsDigest, day, facts_of_stored
from ledger.projections.index import Index
from ledger.projections.mapped import IndexFiles, IndexUnusable
from ledger.projections.store import (
    CLAIM_STALE_SECONDS,
    POSITION_MIN,
    FactStore,
    Tracking,
    claim_stale,
    fact_of_row,
    facts_table,
    parse_version,
)
from ledger.results import TableFinding

__all__ = [
    "Standings",
    "log_hash_at",
    "log_head",
    "persisted_index_findings",
    "read_model_findings",
    "standings_of",
]

TRACKING_TABLE: Final = "projection_tracking"
META_TABLE: Final = "projection_meta"
META_NAMES: Final = frozenset({"current_version", "facts_format", "upgrade_claim"})
FIELDS: Final = Fact.__struct_fields__
REFOLD_PAGE_EVENTS: Final = 10_000
_detail_decoder = msgspec.msgpack.Decoder()

# An index's standings at its position: `(position, {cadre_id: (total, *components)})`, in cents.
Standings = tuple[int, dict[str, tuple[int, ...]]]


def log_head(ledger: Ledger) -> tuple[int, bytes]:
    """The log's head position and its chain hash: the hash is what shows a log that was cut back and
    written again to the same length."""
    return ledger.head_and_hash()


def log_hash_at(ledger: Ledger, position: int) -> bytes | None:
    """The log's chain hash at `position` (the genesis hash at 0; None past the head)."""
    return ledger.hash_at(position)


UNITS_KEY: Final = "$units"  # the standings' entry of the units' ratings (no cadre_id holds a `$`)


def standings_of(index: Index, as_of: date) -> Standings:
    """Every known cadre's total, components and principal flag as of `as_of`, as known at the index's
    position; and, under UNITS_KEY, a digest of every rating and unit detail the index holds."""
    snapshot = index.snapshot(day(as_of), index.position)
    totals: list[Any] = snapshot.totals.tolist()
    components: list[list[Any]] = snapshot.components.tolist()
    known: list[bool] = snapshot.known.tolist()
    principal: list[bool] = snapshot.principal.tolist()
    held: dict[str, tuple[int, ...]] = {
        cadre.cadre_id: (
            int(totals[cadre.code]),
            *(int(value) for value in components[cadre.code]),
            int(principal[cadre.code]),
        )
        for cadre in index.cadres
        if known[cadre.code]
    }
    held[UNITS_KEY] = (_units_digest(index),)
    return index.position, held


def _units_digest(index: Index) -> int:
    """The ratings row by row (codes resolved to the ids they stand for) and the units' other facts."""
    rated = index.rated
    ratings = rated.ratings
    units, periods, raters = index.unit_ids, rated.period_ids, rated.rater_ids
    digest = hashlib.sha256()
    for column in ("position", "day", "cents", "verdict"):
        digest.update(ratings[column].tobytes())
    names = (
        [units[code] for code in ratings["unit"].tolist()],
        [periods[code] for code in ratings["period"].tolist()],
        [raters[code] for code in ratings["rater"].tolist()],
    )
    digest.update(msgspec.msgpack.encode((names, rated.registrations, rated.panels)))
    return int.from_bytes(digest.digest()[:8], "big")


def persisted_index_findings(ledger: Ledger, store: FactStore) -> list[TableFinding]:
    """How the current version's persisted index file, as an open would map it, differs from a refold of
    the log at its position ([] when it agrees, when there is none, or when an open would not use it: a file
    that fails its own checks is a cache rebuilt at open, not damage)."""
    stored = store.meta().get("current_version")
    try:
        version = None if stored is None else parse_version(stored)
    except ReadModelsDamaged:
        return []  # the meta finding reports it
    if version is None:
        return []
    try:
        opened = IndexFiles.of(ledger.url, ledger.ledger_id).open(version)
    except IndexUnusable:
        return []
    if opened is None:
        return []
    return _standings_findings(
        f"index file v{version}", ledger, standings_of(opened.index, ledger.today()), None
    )


def read_model_findings(
    ledger: Ledger, store: FactStore, *, standings: Standings | None = None, index_version: int | None = None
) -> list[TableFinding]:
    """How the persisted read models (and `standings`, of an in-memory index, if given) differ from the
    log; empty when they agree. Reads only."""
    meta = store.meta()
    findings: list[TableFinding] = _meta_findings(store, meta)
    stored = meta.get("current_version")
    if index_version is not None:
        version: int | None = index_version
    else:
        try:
            version = None if stored is None else parse_version(stored)
        except ReadModelsDamaged:
            version = None
    if version is None or any(f.row == "current_version" and f.reason == "altered" for f in findings):
        # Nothing persisted yet, or no version to compare: the meta finding says which.
        return findings + _standings_findings("index", ledger, standings, None)
    table = facts_table(version)
    head = ledger.head()
    tracking = store.tracking(version)
    tracked = 0
    if tracking is None:
        findings.append(TableFinding(TRACKING_TABLE, f"version {version}", "missing", "no tracking row"))
    else:
        tracked = min(tracking.position, head)
        findings += _tracking_findings(ledger, version, tracking, head)
    for other, _row in store.tracking_rows():
        if other != version and not store.has_facts(other):
            detail = f"a tracking row for version {other}, which has no facts table"
            findings.append(TableFinding(TRACKING_TABLE, f"version {other}", "inserted", detail))
    if not store.has_facts(version):
        findings.append(
            TableFinding(table, "table", "missing", f"the current version {version} has no table")
        )
        return findings + _standings_findings(table, ledger, standings, None)
    fresh = Index() if standings is not None else None
    until = max(tracked, min(standings[0], head) if standings is not None else 0)
    expected = _refold(ledger, until, fresh, min(standings[0], head) if standings is not None else 0)
    compared = itertools.takewhile(lambda fact: fact.position <= tracked, expected)
    difference, digest = _first_difference(table, compared, store.rows(version, POSITION_MIN), tracked)
    for _fact in expected:  # the rest of the refold, for `fresh`
        pass
    if difference is not None:
        findings.append(difference)
    elif tracking is not None and tracking.position <= head and tracking.digest != digest.digest():
        detail = f"digest: stored {_hex(tracking.digest)}, facts {_hex(digest.digest())}"
        findings.append(TableFinding(TRACKING_TABLE, f"version {version}", "altered", detail))
    return findings + _standings_findings(table, ledger, standings, fresh)


def _meta_findings(store: FactStore, meta: dict[str, str]) -> list[TableFinding]:
    """How `projection_meta` differs from what the ledger writes there."""
    findings: list[TableFinding] = []
    tracked = store.tracking_rows()
    stored = meta.get("current_version")
    if stored is None:
        if tracked:
            detail = "no current version, beside tracking rows of versions " + ", ".join(
                str(version) for version, _row in tracked
            )
            findings.append(TableFinding(META_TABLE, "current_version", "missing", detail))
    else:
        try:
            version = parse_version(stored)
        except ReadModelsDamaged:
            detail = f"current_version: stored {stored!r}, not a version number"
            findings.append(TableFinding(META_TABLE, "current_version", "altered", detail))
        else:
            if version not in {other for other, _row in tracked} and not store.has_facts(version):
                detail = f"current_version: stored {stored!r}, a version with no tracking row nor facts table"
                findings.append(TableFinding(META_TABLE, "current_version", "altered", detail))
    facts_format = meta.get("facts_format")
    if (stored is not None or tracked) and facts_format != str(FACTS_FORMAT):
        detail = (
            f"facts_format: stored {facts_format!r}, this ledger writes {FACTS_FORMAT} "
            "(the next open rebuilds the facts)"
        )
        reason = "missing" if facts_format is None else "altered"
        findings.append(TableFinding(META_TABLE, "facts_format", reason, detail))
    claim = meta.get("upgrade_claim")
    if claim is not None and claim_stale(claim, time.time()):
        detail = (
            f"upgrade_claim: stored {claim!r}, which no live process refreshes "
            f"(stale after {CLAIM_STALE_SECONDS:.0f} s); the next rebuild takes it over"
        )
        findings.append(TableFinding(META_TABLE, "upgrade_claim", "stale", detail))
    for name in sorted(meta.keys() - META_NAMES):
        findings.append(
            TableFinding(META_TABLE, name, "inserted", f"a row the ledger never writes: {meta[name]!r}")
        )
    return findings


def _tracking_findings(ledger: Ledger, version: int, tracking: Tracking, head: int) -> list[TableFinding]:
    row = f"version {version}"
    if tracking.position > head:
        detail = f"position: stored {tracking.position}, the log ends at {head}"
        return [TableFinding(TRACKING_TABLE, row, "altered", detail)]
    held = log_hash_at(ledger, tracking.position)
    if held != tracking.log_hash:
        detail = (
            f"log_hash: stored {_hex(tracking.log_hash)}, log {_hex(held)} at position {tracking.position}"
        )
        return [TableFinding(TRACKING_TABLE, row, "altered", detail)]
    return []


def _refold(ledger: Ledger, until: int, fresh: Index | None, index_until: int) -> Iterator[Fact]:
    """The facts of the log through `until`, in order; those through `index_until` folded into `fresh`."""
    position = 0
    while position < until:
        stored = ledger.stored(after=position, limit=min(REFOLD_PAGE_EVENTS, until - position))
        if not stored:
            return
        facts = facts_of_stored(row for row in stored if row[0] <= until)
        if fresh is not None:
            fresh.add([fact for fact in facts if fact.position <= index_until])
        yield from facts
        position = stored[-1][0]


def _first_difference(
    table: str, expected: Iterator[Fact], pages: Iterator[Sequence[Any]], tracked: int
) -> tuple[TableFinding | None, FactsDigest]:
    """The first row where the persisted facts and the log's differ, and the digest of the persisted facts
    at positions 1 … `tracked` (meaningful when there is no difference)."""
    digest = FactsDigest()
    rows = _rows_digested(pages, tracked, digest)
    fact, row = next(expected, None), next(rows, None)
    while fact is not None or row is not None:
        if row is None:
            assert fact is not None
            return _finding(
                table, fact.position, "missing", "the log gives a fact here; the table has none"
            ), digest
        stored_at = row[0]
        if fact is None or stored_at < fact.position:
            where = (
                f"after position {tracked}, the last tracked"
                if stored_at > tracked
                else "a position the log gives no fact for"
            )
            return _finding(table, stored_at, "inserted", f"a row at {where}"), digest
        if stored_at > fact.position:
            return _finding(
                table, fact.position, "missing", "the log gives a fact here; the table has none"
            ), digest
        altered = _altered(row, fact)
        if altered is not None:
            return _finding(table, fact.position, "altered", altered), digest
        fact, row = next(expected, None), next(rows, None)
    for _rest in rows:  # finish the digest of the rows through `tracked`
        pass
    return None, digest


def _rows_digested(pages: Iterator[Sequence[Any]], tracked: int, digest: FactsDigest) -> Iterator[Any]:
    for page in pages:
        # A detail that does not decode leaves the digest wrong: the row comparison reports the row.
        with contextlib.suppress(msgspec.MsgspecError, ValueError, TypeError):
            digest.update([fact_of_row(row) for row in page if 1 <= row[0] <= tracked])
        yield from page


def _altered(row: Sequence[Any], fact: Fact) -> str | None:
    """The first column of `row` that differs from `fact`, as `column: stored …, log …`; None if none."""
    logged = msgspec.structs.astuple(fact)
    for number, name in enumerate(FIELDS):
        stored: Any = row[number]
        if name == "detail":
            try:
                stored = tuple(_detail_decoder.decode(stored)) if stored is not None else ()
            except msgspec.MsgspecError:
                undecoded = bytes(stored).hex()[:32]
                return f"detail: stored bytes {undecoded} that do not decode, log {logged[number]!r}"
        if type(stored) is not type(logged[number]) or stored != logged[number]:
            return f"{name}: stored {_show(stored)}, log {_show(logged[number])}"
    return None


def _standings_findings(
    table: str, ledger: Ledger, standings: Standings | None, fresh: Index | None
) -> list[TableFinding]:
    """How the standings of an in-memory index differ from the refold's (its first difference)."""
    if standings is None:
        return []
    position, held = standings
    head = ledger.head()
    if position > head:
        detail = f"the index folded position {position}; the log ends at {head}"
        return [TableFinding(table, f"position {position}", "index_mismatch", detail)]
    if fresh is None:
        fresh = Index()
        for _fact in _refold(ledger, position, fresh, position):
            pass
    _position, logged = standings_of(fresh, ledger.today())
    for cadre_id in sorted(held.keys() | logged.keys()):
        mine, theirs = held.get(cadre_id), logged.get(cadre_id)
        if mine == theirs:
            continue
        if cadre_id == UNITS_KEY:
            detail = "the units' ratings or details differ from those of the log"
            return [TableFinding(table, "units' ratings", "index_mismatch", detail)]
        if mine is None or theirs is None:
            detail = (
                "known in memory, not in the log" if theirs is None else "known in the log, not in memory"
            )
        else:
            name, a, b = next(
                (name, x, y) for name, x, y in zip(_STANDING_NAMES, mine, theirs, strict=True) if x != y
            )
            detail = f"{name}: in memory {a}, log {b}"
        return [TableFinding(table, f"cadre {cadre_id}", "index_mismatch", detail)]
    return []


_STANDING_NAMES: Final = (*(f"{name} cents" for name in ("total", *COMPONENTS)), "principal")


def _finding(table: str, position: int, reason: str, detail: str) -> TableFinding:
    return TableFinding(table, f"position {position}", reason, detail)


def _show(value: Any) -> str:
    return str(value) if type(value) is int else repr(value)


def _hex(value: bytes | None) -> str:
    return "none" if value is None else value.hex()
