"""Read models on disk (issue 11, item 3): the persisted index is a cache, and never served wrong.

Goal: a process opening the read models maps the index persisted for them (`projections/mapped.py`) and
folds only the facts after its position, answering exactly as a process that folded the log; a file that
does not match — a byte changed, truncated, deleted, another ledger's, another version or format, bound to
a position the log no longer holds with that hash — is refused with a WARNING (CRITICAL when the log
disagrees), the facts are loaded from the database as before and a fresh file is written; a directory
that cannot be written only costs the speed. Method: on SQLite and PostgreSQL, a seeded ledger whose
answers are worked out by hand, and the demo's small city compared with a fold of the log at several
moments. The files are read and changed here through their documented layout, not through the module.

Seeded (illustrative policy: county citation 1.00, excellent 5.00, competent 2.00; every cadre registered
2024-01-01 with the same grade and service dates, so the tie-breakers tie too):

    1 policy · 2–4 C1 (U1), C2 (U1), C3 (U2) · 5 citation C1 2024-06-01 · 6 excellent C1 ·
    7 citation C2 2024-06-02 · 8 competent C2 · 9 citation C3 2024-06-03 · 10 competent C3
        → C1 6.00, C2 3.00, C3 3.00: ranks 1, 2, 2
    tail: 11 citation C3 2024-07-01 · 12 C1's citation (position 5) reversed
        → C1 5.00, C3 4.00, C2 3.00: ranks 1, 2, 3
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import shutil
import struct
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from ledger import Ledger
from ledger.demo import run_demo
from ledger.domain.events import (
    AppraisalRecorded,
    CadreTransferred,
    EntryReversed,
    MeritAwarded,
    Source,
    VetoApplied,
)
from ledger.projections import service
from ledger.projections.facts import FACTS_FORMAT
from ledger.projections.service import Projections
from tests.conftest import TODAY, drop_schema, fixed_clock, registration
from tests.integration.test_concurrency_more import run_processes
from tests.integration.test_read_model_integrity import cut_log
from tests.support import raw_sql

PREFIX = struct.Struct("<16s32sQQ")  # magic, SHA-256 of the header, its offset and length
SEEDED = [(1, "C1", Decimal("6.00")), (2, "C2", Decimal("3.00")), (2, "C3", Decimal("3.00"))]
AFTER_TAIL = [(1, "C1", Decimal("5.00")), (2, "C3", Decimal("4.00")), (3, "C2", Decimal("3.00"))]
KNOWN_AT_11 = [(1, "C1", Decimal("6.00")), (2, "C3", Decimal("4.00")), (3, "C2", Decimal("3.00"))]
# As of 2024-06-30 (before the July citation and the 2025 appraisals): only the June citations count.
JUNE_NOW = [(1, "C2", Decimal("1.00")), (1, "C3", Decimal("1.00")), (3, "C1", Decimal("0.00"))]
JUNE_KNOWN_AT_11 = [(1, "C1", Decimal("1.00")), (1, "C2", Decimal("1.00")), (1, "C3", Decimal("1.00"))]
JUNE = date(2024, 6, 30)


@pytest.fixture(autouse=True)
def indexes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Path:
    """Every persisted index of the test under one directory of its own (for PostgreSQL, instead of the
    user's cache directory); warnings of the read models captured."""
    root = tmp_path / "indexes"
    monkeypatch.setenv("LEDGER_INDEX_DIR", str(root))
    caplog.set_level(logging.WARNING, logger="ledger.projections")
    return root


@pytest.fixture
def seeded(store_url: str) -> Iterator[tuple[Ledger, uuid.UUID]]:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        yield ledger, seed(ledger)


def citation(cadre_id: str, on: date, key: str) -> MeritAwarded:
    return MeritAwarded(
        cadre_id=cadre_id,
        effective_on=on,
        source=Source(system="hr", key=key),
        award="citation",
        level="county",
    )


def seed(ledger: Ledger) -> uuid.UUID:
    """Positions 2–10 above; the event id of C1's citation."""
    events: list[Any] = [
        registration("C1", unit_id="U1", key="reg-C1"),
        registration("C2", unit_id="U1", key="reg-C2", leadership=False),
        registration("C3", unit_id="U2", key="reg-C3", principal=True),
    ]
    for number, cadre_id in enumerate(("C1", "C2", "C3"), start=1):
        events.append(citation(cadre_id, date(2024, 6, number), f"citation-{cadre_id}"))
        events.append(
            AppraisalRecorded(
                cadre_id=cadre_id,
                effective_on=date(2025, 1, 10),
                source=Source(system="hr", key=f"appraisal-{cadre_id}"),
                year=2024,
                result="excellent" if number == 1 else "competent",
            )
        )
    result = ledger.post(events, posted_by="seed")
    assert result.position == 10
    return result.results[3].event_id


def post_tail(ledger: Ledger, c1_citation: uuid.UUID) -> None:
    """Positions 11 and 12 above."""
    ledger.post([citation("C3", date(2024, 7, 1), "citation-C3-july")], posted_by="seed")
    reversal = EntryReversed(
        cadre_id="C1",
        effective_on=date(2025, 6, 1),
        source=Source(system="hr", key="reversal-C1"),
        target_event_id=c1_citation,
        reason="申诉成立",
    )
    assert ledger.post([reversal], posted_by="seed").position == 12


def ranked(projections: Projections, **read: Any) -> list[tuple[int, str, Decimal]]:
    return [(entry.rank, entry.cadre_id, entry.total) for entry in projections.rankings(**read).entries]


def directory_of(ledger: Ledger, root: Path) -> Path:
    """The ledger's directory under LEDGER_INDEX_DIR: named by its ledger id (then the schema, or the
    SQLite file's path)."""
    (directory,) = root.glob(f"{ledger.ledger_id}-*")
    return directory


def persist(ledger: Ledger, root: Path) -> Path:
    """Open the read models twice: the first folds the log (the tail is small: no file yet), the second
    loads the facts from the database and, finding no file, writes one. The file's path."""
    Projections.open(ledger).close()
    Projections.open(ledger).close()
    path = directory_of(ledger, root) / f"v{current_version(ledger)}.index"
    assert path.is_file()
    return path


def current_version(ledger: Ledger) -> int:
    return int(raw_sql(ledger.url, "SELECT value FROM projection_meta WHERE name = 'current_version'")[0][0])


def warnings(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "ledger.projections" and record.levelno >= level
    ]


def is_mapped(projections: Projections) -> bool:
    """Whether the index's score columns are views of a memory map (a file), not arrays of its own."""
    base: Any = projections.index.scores["position"]
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)


# The file's layout, read and changed independently of the module.


class Layout:
    """A persisted index's bytes, its header (a MessagePack map) and its regions by name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = bytearray(path.read_bytes())
        _magic, _digest, self.offset, length = PREFIX.unpack_from(self.data)
        self.header: dict[str, Any] = msgspec.msgpack.decode(
            bytes(self.data[self.offset : self.offset + length])
        )
        # A region: [name, dtype, offset, rows, capacity, digest].
        self.regions: dict[str, list[Any]] = {region[0]: region for region in self.header["regions"]}

    def column(self, name: str) -> np.ndarray[Any, Any]:
        _name, dtype, offset, rows, _capacity, _digest = self.regions[name]
        return np.frombuffer(self.data, dtype=np.dtype(dtype), count=rows, offset=offset)

    def used(self, name: str) -> bytes:
        _name, dtype, offset, rows, _capacity, _digest = self.regions[name]
        return bytes(self.data[offset : offset + rows * np.dtype(dtype).itemsize])

    def put(self, name: str, row: int, value: Any, *, redigest: bool) -> None:
        """Set one value of a column (a row of its used part); with `redigest`, its digest follows."""
        _name, dtype, offset, _rows, _capacity, _digest = self.regions[name]
        item = np.dtype(dtype).itemsize
        self.data[offset + row * item : offset + (row + 1) * item] = np.array([value], dtype=dtype).tobytes()
        if redigest:
            self.regions[name][5] = hashlib.sha256(self.used(name)).digest()

    def save(self) -> None:
        """Write the bytes back with the header re-encoded and its digest recomputed."""
        header = msgspec.msgpack.encode(self.header)
        data = self.data[: self.offset] + header
        data[: PREFIX.size] = PREFIX.pack(
            bytes(self.data[:16]), hashlib.sha256(header).digest(), self.offset, len(header)
        )
        self.path.write_bytes(bytes(data))


def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x5A
    path.write_bytes(bytes(data))


# An index opened from its file answers as the log does.


def test_an_index_opened_from_its_file_folds_only_the_tail_and_answers_as_worked_out_by_hand(
    seeded: tuple[Ledger, uuid.UUID], indexes: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger, c1_citation = seeded
    path = persist(ledger, indexes)
    assert Layout(path).header["binding"]["position"] == 10
    written = path.stat()
    caplog.clear()
    opened = Projections.open(ledger)
    try:
        assert warnings(caplog) == []
        assert is_mapped(opened)
        assert ranked(opened) == SEEDED
        assert ranked(opened, as_of=JUNE) == [
            (1, "C1", Decimal("1.00")),
            (1, "C2", Decimal("1.00")),
            (1, "C3", Decimal("1.00")),
        ]
        file_digest = hashlib.sha256(path.read_bytes()).digest()
        post_tail(ledger, c1_citation)
        # The live process folds the tail into its mapped columns (the reversal marks row 5, in the file's
        # pages): copy-on-write, the file is untouched.
        assert ranked(opened) == AFTER_TAIL
        assert hashlib.sha256(path.read_bytes()).digest() == file_digest
    finally:
        opened.close()
    reopened = Projections.open(ledger)
    try:
        assert warnings(caplog) == []
        assert is_mapped(reopened) and reopened.position() == 12
        assert ranked(reopened) == AFTER_TAIL
        assert ranked(reopened, known_at=10) == SEEDED
        assert ranked(reopened, known_at=11) == KNOWN_AT_11
        assert ranked(reopened, as_of=JUNE) == JUNE_NOW
        assert ranked(reopened, as_of=JUNE, known_at=11) == JUNE_KNOWN_AT_11
        cadre = reopened.cadre("C1", known_at=11)
        assert (cadre.total, cadre.components.merit, cadre.components.appraisal) == (
            Decimal("6.00"),
            Decimal("1.00"),
            Decimal("5.00"),
        )
    finally:
        reopened.close()
    # Not rewritten: a tail of two facts is far below the bound.
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)


def test_the_index_is_written_again_once_the_tail_reaches_the_bound(
    seeded: tuple[Ledger, uuid.UUID], indexes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, c1_citation = seeded
    path = persist(ledger, indexes)
    monkeypatch.setattr(service, "PERSIST_TAIL_MIN", 2)
    live = Projections.open(ledger)
    try:
        post_tail(ledger, c1_citation)
        assert ranked(live) == AFTER_TAIL  # this read folds the tail: two facts, the bound
        assert Layout(path).header["binding"]["position"] == 12
        assert is_mapped(live)  # and serves from the new file
        assert ranked(live, known_at=11) == KNOWN_AT_11
    finally:
        live.close()
    monkeypatch.setattr(service, "PERSIST_TAIL_MIN", 50_000)
    reopened = Projections.open(ledger)
    try:
        assert ranked(reopened) == AFTER_TAIL and ranked(reopened, known_at=10) == SEEDED
    finally:
        reopened.close()


def test_the_files_live_beside_a_sqlite_file_or_under_the_cache_keyed_by_ledger_and_schema(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEDGER_INDEX_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        seed(ledger)
        Projections.open(ledger).close()
        Projections.open(ledger).close()
        if store_url.startswith("sqlite"):
            expected = tmp_path / "ledger.db.index" / "v1.index"
        else:
            schema = store_url.rsplit("schema=", 1)[1]
            expected = (
                tmp_path / "cache" / "cadre-ledger" / "index" / f"{ledger.ledger_id}-{schema}" / "v1.index"
            )
        assert expected.is_file()
        reopened = Projections.open(ledger)
        try:
            assert is_mapped(reopened) and ranked(reopened) == SEEDED
        finally:
            reopened.close()


def answers(projections: Projections, moments: list[tuple[date, int]], units: list[str]) -> list[Any]:
    """Every kind of read at every moment, as plain values."""
    found: list[Any] = []
    for as_of, known_at in moments:
        for scope in (
            "all",
            *(f"unit:{unit}" for unit in units),
            "cohort:principal",
            "cohort:left_leadership",
        ):
            found.append(projections.rankings(scope, as_of=as_of, known_at=known_at))
        found.append(projections.rankings("all", as_of=as_of, known_at=known_at, basis="period"))
        found.append(projections.shortlist("all", as_of=as_of, known_at=known_at))
        for period in ("2025Q2", "2025Q3"):
            found.append(projections.boards(period, known_at=known_at))
            found.append(projections.recalls(period, known_at=known_at))
            found.append(projections.escalations(period, known_at=known_at))
    return [msgspec.to_builtins(view) for view in found]


def test_the_demo_city_read_from_its_file_answers_as_a_fold_of_the_log_before_and_after_a_tail(
    store_url: str,
    indexes: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The small demo city (20k events: transfers, departures, vetoes, sanctions, investigations, recalls,
    reversals, ties at every board's edge): every read of a process that opened the file equals that of a
    process that folded the log itself (its directory unwritable: nothing persisted, nothing mapped)."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        run_demo(ledger, seed=7, scale="small", today=TODAY)
        monkeypatch.setenv("LEDGER_INDEX_DIR", str(blocker / "indexes"))
        folded = Projections.open(ledger)
        monkeypatch.setenv("LEDGER_INDEX_DIR", str(indexes))
        try:
            assert not is_mapped(folded)
            path = persist(ledger, indexes)
            caplog.clear()
            opened = Projections.open(ledger)
            try:
                assert warnings(caplog) == [] and is_mapped(opened)
                head = ledger.head()
                units = sorted({entry.unit_id for entry in folded.rankings().entries})[:3]
                moments = [
                    (date(2024, 9, 30), head // 3),
                    (TODAY, head // 2),
                    (date(2025, 9, 30), head),
                    (TODAY, head),
                ]
                assert answers(opened, moments, units) == answers(folded, moments, units)
                # A tail: a transfer, an award and the reversal of an award folded into the file.
                first, second = folded.rankings().entries[:2]
                other_unit = next(unit for unit in units if unit != first.unit_id)
                award = ledger.post([citation(first.cadre_id, date(2025, 11, 1), "tail-award")]).results[0]
                ledger.post(
                    [
                        CadreTransferred(
                            cadre_id=first.cadre_id,
                            effective_on=date(2025, 11, 2),
                            source=Source(system="hr", key="tail-transfer"),
                            unit_id=other_unit,
                        ),
                        EntryReversed(
                            cadre_id=first.cadre_id,
                            effective_on=date(2025, 11, 3),
                            source=Source(system="hr", key="tail-reversal"),
                            target_event_id=award.event_id,
                            reason="录入错误",
                        ),
                        # Bars the 2025 awards of the cadre second in the ranking: merits in the file's
                        # columns, counted nothing from here on.
                        VetoApplied(
                            cadre_id=second.cadre_id,
                            effective_on=date(2025, 11, 4),
                            source=Source(system="discipline", key="tail-veto"),
                            year=2025,
                            reason="违反廉洁纪律",
                        ),
                    ]
                )
                moments += [(TODAY, head + 1), (TODAY, head + 3), (date(2025, 9, 30), head + 4)]
                units.append(other_unit)
                barred = [
                    folded.cadre(second.cadre_id, known_at=at).components.merit for at in (head + 3, head + 4)
                ]
                assert barred[1] < barred[0], "the veto bars merits folded into the file's columns"
                expected = answers(folded, moments, units)
                assert answers(opened, moments, units) == expected
            finally:
                opened.close()
            reopened = Projections.open(ledger)
            try:
                assert warnings(caplog) == [] and is_mapped(reopened)
                assert Layout(path).header["binding"]["position"] == head  # the tail came from the table
                assert answers(reopened, moments, units) == expected
            finally:
                reopened.close()
        finally:
            folded.close()


# A file that does not match is refused, the facts are loaded from the database, a fresh file is written.


def _change_a_column(path: Path) -> None:
    layout = Layout(path)
    _name, _dtype, offset, _rows, _capacity, _digest = layout.regions["scores.cents"]
    flip(path, offset)


def _change_the_parts(path: Path) -> None:
    """C3's unit U2 → U3 among the units the parts list: still well-formed, only its digest tells."""
    layout = Layout(path)
    _name, _dtype, offset, rows, _capacity, _digest = layout.regions["parts"]
    at = bytes(layout.data[offset : offset + rows]).index(b"\xa2U2")
    data = bytearray(path.read_bytes())
    data[offset + at + 2] = ord("3")
    path.write_bytes(bytes(data))


def _change_the_stream(path: Path) -> None:
    _name, _dtype, offset, rows, _capacity, _digest = Layout(path).regions["stream"]
    flip(path, offset + rows // 2)


def _change_the_header(path: Path) -> None:
    flip(path, Layout(path).offset + 5)


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _truncate_to_nothing(path: Path) -> None:
    os.truncate(path, 0)


def _delete(path: Path) -> None:
    path.unlink()


def _bind_to_another_format(path: Path) -> None:
    layout = Layout(path)
    layout.header["binding"]["facts_format"] = FACTS_FORMAT - 1
    layout.save()


def _bind_to_another_layout(path: Path) -> None:
    layout = Layout(path)
    layout.header["index_format"] += 1
    layout.save()


TAMPERING: dict[str, Callable[[Path], None]] = {
    "a column's byte": _change_a_column,
    "a byte of the parts": _change_the_parts,
    "a byte of the facts' stream": _change_the_stream,
    "a byte of the header": _change_the_header,
    "truncated": _truncate,
    "truncated to nothing": _truncate_to_nothing,
    "deleted": _delete,
    "another facts format": _bind_to_another_format,
    "another index format": _bind_to_another_layout,
}


@pytest.mark.parametrize("tamper", TAMPERING.values(), ids=TAMPERING.keys())
def test_a_damaged_or_foreign_file_is_refused_with_a_warning_and_written_afresh(
    seeded: tuple[Ledger, uuid.UUID],
    indexes: Path,
    caplog: pytest.LogCaptureFixture,
    tamper: Callable[[Path], None],
) -> None:
    ledger, c1_citation = seeded
    path = persist(ledger, indexes)
    post_tail(ledger, c1_citation)
    tamper(path)
    caplog.clear()
    opened = Projections.open(ledger)
    try:
        lines = warnings(caplog)
        assert len(lines) == 1 and str(path) in lines[0], lines
        assert warnings(caplog, logging.CRITICAL) == []
        assert ranked(opened) == AFTER_TAIL
        assert ranked(opened, known_at=11) == KNOWN_AT_11
        assert is_mapped(opened)  # from the fresh file, written at the tracked position before the tail
    finally:
        opened.close()
    assert Layout(path).header["binding"]["position"] == 10
    caplog.clear()
    again = Projections.open(ledger)
    try:
        assert warnings(caplog) == [] and is_mapped(again) and ranked(again) == AFTER_TAIL
    finally:
        again.close()


def test_another_ledgers_file_put_in_place_is_refused(
    store_url: str, indexes: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two ledgers with the same events (so the same facts and digests): the other's file names its ledger."""
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        seed(ledger)
        path = persist(ledger, indexes)
    other_url = (
        store_url.replace("ledger.db", "other.db")
        if store_url.startswith("sqlite")
        else store_url.replace("schema=", "schema=o")
    )
    try:
        with Ledger.open(other_url, clock=fixed_clock) as other:
            seed(other)
            shutil.copyfile(persist(other, indexes), path)
        caplog.clear()
        with Ledger.open(store_url, clock=fixed_clock) as ledger:
            opened = Projections.open(ledger)
            try:
                (line,) = warnings(caplog)
                assert "ledger" in line and str(path) in line
                assert ranked(opened) == SEEDED
            finally:
                opened.close()
            assert Layout(path).header["binding"]["ledger_id"] == ledger.ledger_id
    finally:
        if not other_url.startswith("sqlite"):
            drop_schema(os.environ["LEDGER_TEST_POSTGRES_URL"], other_url.rsplit("schema=", 1)[1])


def test_a_file_of_another_version_is_refused_and_a_rebuild_removes_the_old_versions_files(
    seeded: tuple[Ledger, uuid.UUID], indexes: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger, _citation = seeded
    first = persist(ledger, indexes)
    kept = first.read_bytes()
    rebuilt = Projections.open(ledger)
    try:
        rebuilt.rebuild()
        assert rebuilt.version == 2 and is_mapped(rebuilt)
    finally:
        rebuilt.close()
    second = first.with_name("v2.index")
    assert second.is_file() and not first.exists()
    second.write_bytes(kept)  # version 1's file where version 2's belongs
    caplog.clear()
    opened = Projections.open(ledger)
    try:
        (line,) = warnings(caplog)
        assert "version 1" in line and str(second) in line
        assert ranked(opened) == SEEDED
    finally:
        opened.close()
    assert Layout(second).header["binding"]["version"] == 2


def test_a_process_following_another_processs_rebuild_maps_the_file_that_rebuild_wrote(
    seeded: tuple[Ledger, uuid.UUID], indexes: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The rebuild writes its version's file before it switches reads to it: a live process that notices
    the switch maps that file (no warning, no load from the database) and folds what came after."""
    ledger, c1_citation = seeded
    persist(ledger, indexes)
    live = Projections.open(ledger)
    try:
        other = Projections.open(ledger)
        try:
            other.rebuild()
        finally:
            other.close()
        post_tail(ledger, c1_citation)
        caplog.clear()
        assert ranked(live) == AFTER_TAIL
        assert live.version == 2 and is_mapped(live) and warnings(caplog) == []
        assert ranked(live, known_at=10) == SEEDED
    finally:
        live.close()


# A file bound to a position the log no longer holds with that hash.


def test_a_file_bound_to_another_hash_than_the_logs_is_refused_at_critical(
    seeded: tuple[Ledger, uuid.UUID], indexes: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The file alone disagrees with the log (the tracking row agrees): CRITICAL, the facts table serves."""
    ledger, c1_citation = seeded
    path = persist(ledger, indexes)
    post_tail(ledger, c1_citation)
    layout = Layout(path)
    layout.header["binding"]["log_hash"] = hashlib.sha256(b"another log").digest()
    layout.save()
    caplog.clear()
    opened = Projections.open(ledger)
    try:
        (line,) = warnings(caplog, logging.CRITICAL)
        assert "position 10" in line and str(path) in line
        assert ranked(opened) == AFTER_TAIL and opened.version == 1  # no rebuild: the table agreed
    finally:
        opened.close()


@pytest.mark.parametrize("rewrite", [False, True], ids=["log cut back", "log cut back and rewritten"])
def test_a_log_rewound_behind_the_file_is_refused_at_critical_and_refolded(
    seeded: tuple[Ledger, uuid.UUID], indexes: Path, caplog: pytest.LogCaptureFixture, rewrite: bool
) -> None:
    """A backup restored in place: positions 9 and 10 (C3's citation and appraisal) are gone, or replaced
    by two other events at the same positions (C2's citations dated 2024-07-01 and 2024-07-02)."""
    ledger, _citation = seeded
    path = persist(ledger, indexes)
    cut_log(ledger.url, 8)
    expected = [(1, "C1", Decimal("6.00")), (2, "C2", Decimal("3.00")), (3, "C3", Decimal("0.00"))]
    if rewrite:
        with Ledger.open(ledger.url, clock=fixed_clock) as other:
            result = other.post(
                [citation("C2", date(2024, 7, day), f"rewrite-{day}") for day in (1, 2)], posted_by="restore"
            )
        assert [item.position for item in result.results] == [9, 10]
        expected = [(1, "C1", Decimal("6.00")), (2, "C2", Decimal("5.00")), (3, "C3", Decimal("0.00"))]
    caplog.clear()
    with Ledger.open(ledger.url, clock=fixed_clock) as restored:
        opened = Projections.open(restored)
        try:
            lines = warnings(caplog, logging.CRITICAL)
            assert lines and "position 10" in lines[0] and str(path) in lines[0], lines
            assert ranked(opened) == expected
            assert opened.version == 2  # the tracking row disagreed with the log too: rebuilt
        finally:
            opened.close()
        caplog.clear()
        again = Projections.open(restored)
        try:
            assert warnings(caplog) == [] and is_mapped(again) and ranked(again) == expected
        finally:
            again.close()


def test_a_file_rewritten_consistently_passes_its_checks_and_verify_finds_it(
    seeded: tuple[Ledger, uuid.UUID], indexes: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The file's digests are not a secret: C1's citation forged to 5,001.00 with every digest recomputed
    opens (like a facts table rewritten with its digest). `verify --read-models` compares the serving index
    with a refold of the log, finds it, and the read models are rebuilt."""
    ledger, _citation = seeded
    path = persist(ledger, indexes)
    layout = Layout(path)
    (row,) = np.flatnonzero(layout.column("scores.position") == 5)
    layout.put("scores.cents", int(row), 500_100, redigest=True)
    layout.put("scores.cents_float", int(row), 500_100.0, redigest=True)
    layout.save()
    opened = Projections.open(ledger)
    try:
        assert ranked(opened)[0] == (1, "C1", Decimal("5006.00"))
        caplog.clear()
        findings = opened.verify_read_models()
        assert [finding.reason for finding in findings] == ["index_mismatch"], findings
        assert len(warnings(caplog, logging.CRITICAL)) == 1
        assert ranked(opened) == SEEDED and opened.version == 2
    finally:
        opened.close()


# A directory that cannot be written.


def answers_without_a_directory(url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Whatever the store: a warning that the index is served from memory, once per process, and every
    read answers (each catch-up of two facts would write the file: see the callers)."""
    with Ledger.open(url, clock=fixed_clock) as ledger:
        c1_citation = seed(ledger)
        Projections.open(ledger).close()  # folds the log, and cannot write the file
        caplog.clear()
        opened = Projections.open(ledger)
        try:
            lines = warnings(caplog)
            assert len(lines) == 2 and "no persisted index" in lines[0] and "cannot persist" in lines[1], (
                lines
            )
            assert not is_mapped(opened) and ranked(opened) == SEEDED
            post_tail(ledger, c1_citation)
            assert ranked(opened) == AFTER_TAIL and ranked(opened, known_at=11) == KNOWN_AT_11
            assert len(warnings(caplog)) == 2  # not tried again
        finally:
            opened.close()


def test_a_directory_that_cannot_be_written_costs_speed_not_answers(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """LEDGER_INDEX_DIR below a regular file: no directory can be made there, even by root."""
    blocker = tmp_path / "blocked"
    blocker.write_text("")
    monkeypatch.setenv("LEDGER_INDEX_DIR", str(blocker / "indexes"))
    monkeypatch.setattr(service, "PERSIST_TAIL_MIN", 2)
    answers_without_a_directory(store_url, caplog)


def test_a_file_in_the_place_of_the_directory_beside_a_sqlite_file_costs_speed_not_answers(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("LEDGER_INDEX_DIR")
    (tmp_path / "ledger.db.index").write_text("")
    monkeypatch.setattr(service, "PERSIST_TAIL_MIN", 2)
    answers_without_a_directory(sqlite_url, caplog)


# Two processes writing the file at once.


def open_and_answer(packed: str, number: int, barrier: Any, results: Any) -> None:
    """In a process of its own: open the read models (no file yet: each loads the facts from the
    database and writes one) at the same moment as the others; send back the ranking."""
    try:
        url, directory = packed.split("|")
        os.environ["LEDGER_INDEX_DIR"] = directory
        with Ledger.open(url, clock=fixed_clock) as ledger:
            barrier.wait(30)
            projections = Projections.open(ledger)
            try:
                answer = msgspec.json.encode(
                    [[rank, cadre, str(total)] for rank, cadre, total in ranked(projections)]
                )
            finally:
                projections.close()
        results.put((number, answer))
    except BaseException as error:  # reported by run_processes
        results.put((number, f"{type(error).__name__}: {error}"))


def test_processes_writing_the_file_at_once_leave_one_whole_file(
    seeded: tuple[Ledger, uuid.UUID], indexes: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger, _citation = seeded
    Projections.open(ledger).close()  # folds the log; the tail is small: no file
    answers = run_processes(open_and_answer, f"{ledger.url}|{indexes}", 3)
    expected = msgspec.json.encode([[rank, cadre, str(total)] for rank, cadre, total in SEEDED])
    assert set(answers.values()) == {expected}
    directory = directory_of(ledger, indexes)
    assert sorted(path.name for path in directory.iterdir()) == ["v1.index"]  # no temporary file left
    caplog.clear()
    opened = Projections.open(ledger)
    try:
        assert warnings(caplog) == [] and is_mapped(opened) and ranked(opened) == SEEDED
    finally:
        opened.close()


# The stream the file keeps is what the facts digest hashes.


def test_the_stream_of_a_file_hashes_to_the_tracking_rows_digest(
    seeded: tuple[Ledger, uuid.UUID], indexes: Path
) -> None:
    """Recomputed here from the raw fact rows: SHA-256 over each row's MessagePack array of nine columns,
    in position order — the tracking row's digest, and the file's stream is exactly those bytes."""
    ledger, _citation = seeded
    path = persist(ledger, indexes)
    rows = raw_sql(
        ledger.url,
        "SELECT position, kind, cadre, effective_on, counts_from, cents, target, detail, award "
        "FROM projection_facts_v1 ORDER BY position",
    )
    encoded = b"".join(
        msgspec.msgpack.encode([*row[:7], list(msgspec.msgpack.decode(row[7])) if row[7] else [], row[8]])
        for row in rows
    )
    (tracked,) = raw_sql(ledger.url, "SELECT digest FROM projection_tracking WHERE version = 1")
    assert bytes(tracked[0]) == hashlib.sha256(encoded).digest()
    layout = Layout(path)
    assert layout.used("stream") == encoded
    assert layout.header["binding"]["facts_digest"] == hashlib.sha256(encoded).digest()
