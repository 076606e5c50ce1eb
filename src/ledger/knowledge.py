"""What the writer knows: every cadre's state, the rulebooks, and the units, rating panels and ratings
(`ledger.domain.units`), as of the log position it folded last.

The writer (`ledger.writer`) decides each batch against this knowledge. It is kept in step with the log by
folding what was appended since it last looked — by any process — after checking that the log still holds
the position and hash folded last: a log restored in place, or a standby promoted without its last
commits, reuses positions for other events, and then the knowledge is folded again from the log as it is.

A batch is decided on a `Draft`: copies of the states it changes, installed only once the batch is
appended. The draft notes the streams it read; the writer, holding the append lock, folds what other
writers appended since the decision (`Moved` says what that touched), and the draft still holds when
none of it touched what the draft read. Otherwise the touched cadres' part of it is thrown away and their
items decided again against the knowledge as it now is (`ledger.planning`). Nothing is reloaded from the
streams.

The knowledge is always complete (every cadre of the log). Folding a whole log takes seconds at a million
events, so it is persisted (table `ledger_writer_state`): the states' MessagePack bytes bound to a position,
that position's chain hash and the SHA-256 of the bytes. It is a cache. On open it is restored only when
every check holds, then the tail after its position is folded; otherwise the log is folded from the start.
`findings()` compares it with a fold of the log (`ledger verify --read-models`), which also catches a
consistent rewrite of the bytes and their digest.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Final

import msgspec

from ledger.domain.cadre import (
    CHANGED_BY,
    CONTAINERS,
    POLICY_STREAM,
    Cadre,
    CadreState,
    apply,
    register,
    sharing,
)
from ledger.domain.errors import IntegrityFailure
from ledger.domain.events import CadreRegistered, EventBase, PolicyPublished, UnitEvent
from ledger.domain.units import UnitsDraft, UnitsKnown
from ledger.integrity.chain import GENESIS_HASH
from ledger.policy.book import PolicyBook
from ledger.policy.load import load_policy
from ledger.results import TableFinding
from ledger.store.mapper import decode_event
from ledger.store.recorders import LedgerRecorder

__all__ = ["STATE_FORMAT", "Draft", "Knowledge", "Moved"]

CATCH_UP_PAGE: Final = 10_000
# The stored shape of the persisted knowledge: its version and the fields of a state, so that a state of
# another shape (written by another version of the ledger) is never decoded into this one. Bump the
# version whenever `apply` folds an event differently: a state folded the old way must not be restored.
STATE_FORMAT: Final = (
    "writer-state/3:"
    + ",".join(CadreState.__dataclass_fields__)
    + ";units:"
    + ",".join(UnitsKnown.__dataclass_fields__)
)
# Persist while posting once this many events were folded since the last kept state, and on close once
# this few: encoding the city's 4,250 states takes ~0.2 s (7.5 MB), so not after every batch.
PERSIST_EVERY_EVENTS: Final = 100_000
PERSIST_AT_CLOSE_EVENTS: Final = 1_000

logger = logging.getLogger("ledger")


class _Persisted(msgspec.Struct, array_like=True):
    """The persisted knowledge: each cadre's stream version and state, and the other streams' versions."""

    cadres: dict[str, tuple[int, CadreState]]
    versions: dict[str, int]
    units: UnitsKnown


_ENCODER: Final = msgspec.msgpack.Encoder(uuid_format="bytes")
_DECODER: Final = msgspec.msgpack.Decoder(_Persisted)


class Moved:
    """What one catch-up folded, as far as a drafted batch could have read it: the streams whose state or
    version changed, the source keys recorded, and whether the rulebook changed. `everything` when the
    knowledge was dropped and folded again (the log was rewound)."""

    __slots__ = ("book", "everything", "sources", "streams")

    def __init__(self) -> None:
        self.streams: set[str] = set()
        self.sources: set[tuple[str, str]] = set()
        self.book = False
        self.everything = False

    def __bool__(self) -> bool:
        return self.everything or bool(self.streams)

    def note(self, stream: str, event: EventBase) -> None:
        self.streams.add(stream)
        self.sources.add((event.source.system, event.source.key))
        if isinstance(event, PolicyPublished):
            self.book = True


class Knowledge:
    """The writer's knowledge of one log; not thread-safe (the writer holds its lock around it)."""

    def __init__(self, recorder: LedgerRecorder) -> None:
        self._recorder = recorder
        self.cadres: dict[str, Cadre] = {}
        self.versions: dict[str, int] = {}
        self.book = PolicyBook()
        self.units = UnitsKnown()
        self.head = 0
        self.head_hash = GENESIS_HASH
        self._started = False
        self._kept_at = 0  # the position of the persisted state this process last saw or saved
        self._use_kept = True  # False once the kept state was found wrong: fold the log instead

    # Keeping in step with the log.

    def catch_up(self, cursor: Any = None, moved: Moved | None = None) -> None:
        """Fold every event appended since the last look (inside the append session `cursor` if given),
        noting in `moved` what it touched; on first use, restore the persisted knowledge first (or fold
        the log from its start)."""
        if not self._started:
            self._started = True
            if self._use_kept:
                self._restore()
        while True:
            rows = self._recorder.catch_up_rows(self.head, CATCH_UP_PAGE, cursor)
            if self.head > 0:
                if not rows or rows[0][0] != self.head or rows[0][4] != self.head_hash:
                    self._rewound(rows[0] if rows and rows[0][0] == self.head else None)
                    if moved is not None:
                        moved.everything = True
                    continue
                rows = rows[1:]
            if not rows:
                return
            for position, stream, version, state, hash_ in rows:
                if position != self.head + 1:
                    raise IntegrityFailure(
                        f"the log jumps from {self.head} to {position}; run `ledger verify`",
                        position=self.head + 1,
                        reason="missing",
                    )
                event = decode_event(state)
                self._fold(stream, version, event, position)
                if moved is not None:
                    moved.note(stream, event)
                self.head, self.head_hash = position, hash_

    def _fold(self, stream: str, version: int, event: EventBase, position: int) -> None:
        self.versions[stream] = version
        self.units.fold(event)
        if isinstance(event, PolicyPublished):
            self.book.add(event.version, event.effective_from, position, load_policy(event.body))
        elif isinstance(event, CadreRegistered):
            cadre = Cadre(stream, register(event))
            cadre.version = version
            self.cadres[stream] = cadre
        elif (known := self.cadres.get(stream)) is not None:
            apply(known.state, event)
            known.version = version

    def _rewound(self, found: tuple[Any, ...] | None) -> None:
        head = self._recorder.head()
        logger.critical(
            "the log no longer holds what this writer folded: position %d had hash %s, the log now %s "
            "(head %d). It went backwards (a restore in place, or a standby promoted without its last "
            "commits); events acknowledged after position %d may be lost. Refolding the log as it is now.",
            self.head,
            self.head_hash.hex(),
            f"holds hash {found[4].hex()} there" if found is not None else "ends before it",
            head.position,
            head.position if found is None else self.head - 1,
        )
        # Fold the log as it is now, from its start: the kept state may be of the log as it was (the
        # restore checks its binding, but a fold from position 1 cannot loop on what it restored).
        self.forget(use_kept=False)

    def forget(self, *, use_kept: bool = True) -> None:
        """Drop everything known: the next catch-up restores the persisted knowledge (unless `use_kept`
        is False: then, and from then on in this process, it folds the log from its start)."""
        self.cadres, self.versions, self.book = {}, {}, PolicyBook()
        self.units = UnitsKnown()
        self.head, self.head_hash = 0, GENESIS_HASH
        self._started = False
        self._use_kept = self._use_kept and use_kept

    def commit(self, draft: Draft, head: int, head_hash: bytes) -> None:
        """Install what a batch appended through `head`: its drafted states and versions."""
        for stream, cadre in draft.cadres.items():
            self.cadres[stream] = cadre
        self.versions.update(draft.versions)
        if draft.book is not None:
            self.book = draft.book
        draft.units.install()
        self.head, self.head_hash = head, head_hash

    # Persisting.

    def _restore(self) -> None:
        """Take the persisted knowledge if it is bound to what the log holds; else start from nothing."""
        try:
            kept = self._recorder.writer_state()
        except Exception as error:  # a damaged table is one more reason to fold the log instead
            logger.warning("the persisted writer state cannot be read (%s); folding the log", error)
            return
        if kept is None:
            return
        position, hash_ = kept[0], kept[1]
        persisted, problem = self._checked(kept)
        if persisted is None:
            level = logging.CRITICAL if problem.startswith("the log") else logging.WARNING
            logger.log(level, "the persisted writer state is not used: %s; folding the log instead", problem)
            return
        cadres = {}
        for stream, (version, state) in persisted.cadres.items():
            cadre = Cadre(stream, state)
            cadre.version = version
            cadres[stream] = cadre
        book = PolicyBook()
        for policy_position, stored, _recorded_at, _hash in self._recorder.stream_rows(POLICY_STREAM):
            event = decode_event(stored)
            if policy_position <= position and isinstance(event, PolicyPublished):
                book.add(event.version, event.effective_from, policy_position, load_policy(event.body))
        self.cadres, self.versions, self.book = cadres, dict(persisted.versions), book
        self.units = persisted.units
        for stream, cadre in cadres.items():
            self.versions[stream] = cadre.version
        self.head, self.head_hash, self._kept_at = position, hash_, position

    def _checked(self, kept: tuple[int, bytes, str, bytes, bytes]) -> tuple[_Persisted | None, str]:
        """The persisted knowledge decoded, or None and why it cannot be used."""
        position, hash_, format_, digest, blob = kept
        if format_ != STATE_FORMAT:
            return None, f"it was written in another format ({format_.split(':')[0]})"
        if _digest(position, hash_, format_, blob) != digest:
            return None, "its position, hash, format and bytes do not match their digest (altered or torn)"
        # The event row and its chain row together, as the catch-up reads them: a state bound to a
        # position whose event is gone would be refused by the catch-up at once.
        rows = self._recorder.catch_up_rows(position, 0) if position > 0 else []
        held = GENESIS_HASH if position == 0 else (rows[0][4] if rows and rows[0][0] == position else None)
        if held != hash_:
            return None, (
                f"the log does not hold hash {hash_.hex()[:16]}… at position {position} (it holds "
                f"{held.hex()[:16] + '…' if held else 'nothing'}): it was rewritten or cut back"
            )
        try:
            return _DECODER.decode(blob), ""
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            return None, f"its bytes do not decode ({error})"

    def persist(self, *, at_least: int = PERSIST_EVERY_EVENTS) -> bool:
        """Save the knowledge if at least `at_least` events were folded since the kept state (0: always
        when anything is new); True if saved. A store that cannot take it now is logged, not an error."""
        if not self._started or self.head - self._kept_at < max(at_least, 1):
            return False
        blob = _ENCODER.encode(
            _Persisted(
                {stream: (cadre.version, cadre.state) for stream, cadre in self.cadres.items()},
                {stream: version for stream, version in self.versions.items() if stream not in self.cadres},
                self.units,
            )
        )
        try:
            kept = self._recorder.save_writer_state(
                self.head,
                self.head_hash,
                STATE_FORMAT,
                _digest(self.head, self.head_hash, STATE_FORMAT, blob),
                blob,
            )
        except Exception as error:
            # Not again before as many events are folded once more: encoding the state is not free.
            self._kept_at = self.head
            logger.warning("could not keep the writer state at position %d: %s", self.head, error)
            return False
        self._kept_at = self.head  # kept, or a later state of this log is (another process saved it)
        return kept

    def findings(self, table: str) -> list[TableFinding]:
        """How the persisted knowledge differs from a fold of the log up to its position ([] if it agrees
        or none is kept): the check behind `ledger verify --read-models`."""
        kept = self._recorder.writer_state()
        if kept is None:
            return []
        position = kept[0]
        persisted, problem = self._checked(kept)
        if persisted is None:
            # Not used as it is (the next open folds the log): report it all the same.
            return [TableFinding(table, "writer", "unusable", problem)]
        folded = Knowledge(self._recorder)
        folded._started = True
        folded._fold_through(position)
        others = {stream: v for stream, v in folded.versions.items() if stream not in folded.cadres}
        if persisted.versions != others:
            return [
                TableFinding(
                    table,
                    "writer versions",
                    "altered",
                    f"the persisted stream versions at position {position} are not those of the log",
                )
            ]
        if _ENCODER.encode(_sorted_units(persisted.units)) != _ENCODER.encode(_sorted_units(folded.units)):
            return [
                TableFinding(
                    table,
                    "writer units",
                    "altered",
                    f"the persisted units, panels and ratings at position {position} are not the log's",
                )
            ]
        for stream in sorted(set(persisted.cadres) | set(folded.cadres)):
            cadre, held = folded.cadres.get(stream), persisted.cadres.get(stream)
            # Compared as values, not bytes: a set (a cadre's reversed ids) encodes in the order it was
            # built, so a kept state equal to the fold could differ in its bytes (one demo city in three
            # was reported altered). Lists compare in order: the order of a state's changes decides ties
            # (see `_in_force`).
            expected = None if cadre is None else (cadre.version, cadre.state)
            if held != expected:
                return [
                    TableFinding(
                        table,
                        f"writer cadre {stream}",
                        "altered",
                        f"the persisted writer state of {stream} at position {position} is not the fold of "
                        "the log; the next open would decide from it: delete the row (the log is folded "
                        "again) and find out who wrote it",
                    )
                ]
        return []

    def _fold_through(self, position: int) -> None:
        while self.head < position:
            rows = self._recorder.catch_up_rows(self.head, min(CATCH_UP_PAGE, position - self.head))
            rows = [row for row in rows if self.head < row[0] <= position]
            if not rows:
                return
            for row_position, stream, version, state, hash_ in rows:
                self._fold(stream, version, decode_event(state), row_position)
                self.head, self.head_hash = row_position, hash_


def _sorted_units(units: UnitsKnown) -> tuple[object, ...]:
    """The units' knowledge in a canonical order (sets and dicts hold no order of their own)."""
    return (
        sorted(units.known),
        sorted(units.parents.items(), key=lambda item: item[0]),
        sorted((key, panel.drawn_on, sorted(panel.raters)) for key, panel in units.panels.items()),
        sorted(units.rated),
    )


def _digest(position: int, hash_: bytes, format_: str, blob: bytes) -> bytes:
    """The SHA-256 of a kept state and everything it is bound to: moving the row to another position
    (with that position's hash, which anyone can read) breaks it as surely as changing a byte."""
    digest = hashlib.sha256(b"%d\x00%s\x00%s\x00" % (position, hash_.hex().encode(), format_.encode()))
    digest.update(blob)
    return digest.digest()


class Draft:
    """A batch being decided: copies of the states and the book it changes, over the knowledge, and the
    streams it read (`read`: a state asked for, present or not, or a version taken)."""

    __slots__ = ("_copied", "book", "cadres", "knowledge", "read", "units", "versions")

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self.read: set[str] = set()
        self.cadres: dict[str, Cadre] = {}
        self._copied: dict[str, set[str]] = {}  # the containers of each drafted state that are its own
        self.versions: dict[str, int] = {}
        self.book: PolicyBook | None = None
        self.units = UnitsDraft(knowledge.units)

    def state(self, cadre_id: str) -> CadreState | None:
        self.read.add(cadre_id)
        cadre = self.cadres.get(cadre_id) or self.knowledge.cadres.get(cadre_id)
        return None if cadre is None else cadre.state

    @property
    def policies(self) -> PolicyBook:
        return self.book if self.book is not None else self.knowledge.book

    def next_version(self, stream: str) -> int:
        self.read.add(stream)
        version = self.versions.get(stream, self.knowledge.versions.get(stream, 0)) + 1
        self.versions[stream] = version
        return version

    def fold(self, stream: str, event: EventBase, position: int) -> None:
        """Fold a decided event into the draft, copying first what it changes of the knowledge's state
        (only those containers: `CHANGED_BY`; the others stay shared until an event changes them)."""
        version = self.versions[stream]
        self.units.fold(event)
        if isinstance(event, UnitEvent):
            return
        if isinstance(event, PolicyPublished):
            if self.book is None:
                self.book = self.knowledge.book.copy()
            self.book.add(event.version, event.effective_from, position, load_policy(event.body))
            return
        if isinstance(event, CadreRegistered):
            cadre = Cadre(stream, register(event))
            self._copied[stream] = set(CONTAINERS)
        else:
            changes = CHANGED_BY.get(type(event), ())
            drafted = self.cadres.get(stream)
            if drafted is None:
                known = self.knowledge.cadres.get(stream)
                if known is None:
                    return
                cadre = Cadre(stream, sharing(known.state, changes))
                self._copied[stream] = set(changes)
            else:
                cadre, copied_already = drafted, self._copied[stream]
                for name in changes:
                    if name not in copied_already:
                        setattr(cadre.state, name, getattr(cadre.state, name).copy())
                        copied_already.add(name)
            apply(cadre.state, event)
        cadre.version = version
        self.cadres[stream] = cadre
