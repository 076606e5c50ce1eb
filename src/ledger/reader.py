"""Reads from the log: one cadre's history as of a date as known at a moment, events, streams.

Every read goes to the log itself (the read models of `ledger.projections` answer rankings): a history is
one cadre's stream, counted by the same rules as every view (`ledger.counted`), with running totals.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Literal

import msgspec

from ledger.counted import counted_points
from ledger.domain.cadre import POLICY_STREAM, points_of
from ledger.domain.errors import InvalidInput, NotFound
from ledger.domain.events import EntryReversed, EventBase, PolicyPublished, recorded_id, type_of
from ledger.domain.points import ZERO
from ledger.integrity.chain import GENESIS_HASH, format_recorded_at, parse_recorded_at
from ledger.policy.load import load_policy
from ledger.policy.schema import Policy
from ledger.results import HistoryEntry, HistoryPage
from ledger.store.application import LedgerApplication
from ledger.store.mapper import decode_event

__all__ = ["CATCH_UP_PAGE", "LoggedEvent", "Reader"]

CATCH_UP_PAGE = 10_000


class LoggedEvent(msgspec.Struct, frozen=True):
    """An event as the log holds it: its place, recording time, hash and predecessor's hash."""

    position: int
    recorded_at: datetime
    hash: str
    prev_hash: str
    event: EventBase


class _HistoryCursor(msgspec.Struct, frozen=True, array_like=True):
    """What a history cursor pins: the read it continues (route, cadre, `as_of`, the log position the first
    page was read at) and the last entry given out (its `counts_from` and position)."""

    route: Literal["history"]
    cadre_id: str
    as_of: date
    position: int
    counts_from: date
    entry_position: int


_history_cursor_decoder = msgspec.json.Decoder(_HistoryCursor, strict=True)


def _cursor_invalid(why: str) -> InvalidInput:
    return InvalidInput(
        f"not a cursor this ledger gave out for this read: {why}", field="cursor", rule="cursor_invalid"
    )


def _encode_cursor(cursor: _HistoryCursor) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(cursor)).decode().rstrip("=")


def _decode_cursor(text: str) -> _HistoryCursor:
    """The history cursor `text`, exactly as `_encode_cursor` writes it; else `cursor_invalid`."""
    try:
        padded = text + "=" * (-len(text) % 4)
        cursor = _history_cursor_decoder.decode(base64.b64decode(padded, altchars=b"-_", validate=True))
    except (ValueError, msgspec.MsgspecError):
        raise _cursor_invalid("it is not a history cursor") from None
    # One spelling per cursor: stray characters, other padding or another date form are not ours.
    if _encode_cursor(cursor) != text or cursor.position < 0 or cursor.entry_position < 1:
        raise _cursor_invalid("it is not a history cursor") from None
    return cursor


class Reader:
    """The reads of one ledger's log."""

    def __init__(self, application: LedgerApplication, today: Callable[[], date]) -> None:
        self._application = application
        self._recorder = application.ledger_recorder
        self._today = today
        self._read_policies: dict[str, Policy] = {}

    def known_position(self, known_at: int | datetime | None) -> int:
        """The log position a read `known_at` an instant or position sees."""
        head = self._recorder.head().position
        if known_at is None:
            return head
        if isinstance(known_at, datetime):
            if known_at.tzinfo is None:
                raise InvalidInput(
                    "an instant needs a time zone (RFC 3339)",
                    field="known_at",
                    rule="known_at_must_be_aware",
                )
            try:
                instant = format_recorded_at(known_at)
            except OverflowError:
                raise InvalidInput(
                    "the instant lies outside the calendar once in UTC",
                    field="known_at",
                    rule="known_at_out_of_range",
                ) from None
            return self._recorder.position_known_at(instant)
        if known_at < 0:
            raise InvalidInput("a position is 0 or more", field="known_at", rule="known_at_out_of_range")
        return min(known_at, head)

    def history(
        self,
        cadre_id: str,
        *,
        as_of: date | None = None,
        known_at: int | datetime | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> HistoryPage:
        """A cadre's entries with running totals, as of a date, as known at a moment (SPEC §4).

        A `cursor` (a page's `next_cursor`) pins the cadre, `as_of` and the log position of the first page,
        so the pages stay consistent while the log grows; `as_of` and `known_at` may be left out, and if
        given must name the same date and position. A cursor of another read is refused (`cursor_invalid`).
        """
        pinned = _decode_cursor(cursor) if cursor is not None else None
        if pinned is None:
            as_of = as_of or self._today()
            position = self.known_position(known_at)
        else:
            as_of, position = self._pinned_read(pinned, cadre_id, as_of, known_at)
        rows = self._recorder.stream_rows(cadre_id)
        if not rows:
            raise NotFound(f"no cadre {cadre_id}")
        visible = [(row, decode_event(row[1])) for row in rows if row[0] <= position]
        if not visible:
            raise NotFound(f"cadre {cadre_id} was not known at position {position}")
        reversed_by: dict[uuid.UUID, uuid.UUID] = {}
        for _row, event in visible:
            if isinstance(event, EntryReversed):
                reversed_by[event.target_event_id] = recorded_id(event)
        counted = counted_points([(row[0], event) for row, event in visible], as_of, self._policy_of_version)
        entries: list[tuple[date, int, tuple[int, bytes, str, bytes], EventBase]] = []
        for row, event in visible:
            counts_from = event.effective_on
            if isinstance(event, EntryReversed) and isinstance(event.target_effective_on, date):
                counts_from = event.target_effective_on
            if counts_from <= as_of:
                entries.append((counts_from, row[0], row, event))
        entries.sort(key=lambda entry: (entry[0], entry[1]))
        running = ZERO
        built: list[HistoryEntry] = []
        for counts_from, _position, row, event in entries:
            points, adjustment = counted[recorded_id(event)]
            running += points
            built.append(
                HistoryEntry(
                    event_id=recorded_id(event),
                    position=row[0],
                    type=type_of(event),
                    effective_on=event.effective_on,
                    counts_from=counts_from,
                    recorded_at=parse_recorded_at(row[2]),
                    points=points_of(event),
                    counted_points=points,
                    adjustment=adjustment,
                    running_total=running,
                    posted_by=str(event.posted_by),
                    source=event.source,
                    document=event.document,
                    reverses=event.target_event_id if isinstance(event, EntryReversed) else None,
                    reversed_by=reversed_by.get(recorded_id(event)),
                    hash=row[3].hex(),
                )
            )
        start = 0
        if pinned is not None:
            last_given = (pinned.counts_from, pinned.entry_position)
            start = next(
                (
                    index + 1
                    for index, entry in enumerate(built)
                    if (entry.counts_from, entry.position) == last_given
                ),
                -1,
            )
            if start < 0:
                raise _cursor_invalid("it names no entry of this history")
        end = len(built) if limit is None else min(len(built), start + limit)
        next_cursor = None
        if end < len(built):
            last = built[end - 1]
            next_cursor = _encode_cursor(
                _HistoryCursor("history", cadre_id, as_of, position, last.counts_from, last.position)
            )
        known: int | datetime = known_at.astimezone(UTC) if isinstance(known_at, datetime) else position
        return HistoryPage(
            cadre_id=cadre_id,
            as_of=as_of,
            known_at=known,
            position=position,
            total=running,
            entries=built[start:end],
            next_cursor=next_cursor,
        )

    def _pinned_read(
        self, pinned: _HistoryCursor, cadre_id: str, as_of: date | None, known_at: int | datetime | None
    ) -> tuple[date, int]:
        """The `as_of` and position a history cursor pins, checked against the read it is used with."""
        if pinned.cadre_id != cadre_id:
            raise _cursor_invalid(f"it pages the history of another cadre, not {cadre_id}'s")
        if as_of is not None and as_of != pinned.as_of:
            raise _cursor_invalid(f"it pages the history as of {pinned.as_of}, not {as_of}")
        if known_at is not None and self.known_position(known_at) != pinned.position:
            raise _cursor_invalid(f"it pages the history as known at position {pinned.position}")
        if pinned.position > self._recorder.head().position:
            raise _cursor_invalid(f"it was read at position {pinned.position}, beyond the log's head")
        return pinned.as_of, pinned.position

    def _policy_of_version(self, version: str) -> Policy | None:
        """The rulebook published as `version` (None if there is none), read from the log: a history may
        name a policy another process published after this one last posted."""
        if version in self._read_policies:
            return self._read_policies[version]
        for _position, state, _recorded_at, _hash in self._recorder.stream_rows(POLICY_STREAM):
            event = decode_event(state)
            if isinstance(event, PolicyPublished) and event.version not in self._read_policies:
                self._read_policies[event.version] = load_policy(event.body)
        return self._read_policies.get(version)

    def logged(self, position: int) -> LoggedEvent:
        row = self._recorder.event_at(position)
        if row is None:
            raise NotFound(f"no event at position {position}")
        previous = self._recorder.hash_at(position - 1) if position > 1 else GENESIS_HASH
        return LoggedEvent(
            position=row[0],
            recorded_at=parse_recorded_at(row[2]),
            hash=row[3].hex(),
            prev_hash=(previous or b"").hex(),
            event=decode_event(row[1]),
        )

    def event(self, event_id: uuid.UUID | str) -> LoggedEvent:
        """One event with its place, hash and previous hash."""
        position = self._recorder.position_of_event(str(event_id))
        if position is None:
            raise NotFound(f"no event {event_id}")
        return self.logged(position)

    def event_by_id(self, event_id: uuid.UUID) -> tuple[int, EventBase] | None:
        position = self._recorder.position_of_event(str(event_id))
        if position is None:
            return None
        row = self._recorder.event_at(position)
        return None if row is None else (position, decode_event(row[1]))

    def events(self, *, after: int = 0, limit: int = 100) -> list[LoggedEvent]:
        """The log in order, after a position."""
        rows = self._recorder.events_after(after, limit)
        result = []
        previous = (self._recorder.hash_at(after) if after > 0 else GENESIS_HASH) or b""
        for position, state, recorded_at, hash_ in rows:
            result.append(
                LoggedEvent(
                    position,
                    parse_recorded_at(recorded_at),
                    hash_.hex(),
                    previous.hex(),
                    decode_event(state),
                )
            )
            previous = hash_
        return result

    def records(self, *, after: int = 0, limit: int = CATCH_UP_PAGE) -> list[tuple[int, EventBase]]:
        """`(position, event)` of up to `limit` events after a position: the log for folds to read."""
        return [(row[0], decode_event(row[1])) for row in self._recorder.events_after(after, limit)]

    def stored(self, *, after: int = 0, limit: int = CATCH_UP_PAGE) -> list[tuple[int, bytes]]:
        """`(position, stored JSON)` of up to `limit` events after a position, undecoded (the stored format
        of `ledger.store.mapper`): for folds that read only a few fields of many events."""
        return self._recorder.states_after(after, limit)

    def policies(self) -> list[PolicyPublished]:
        """Every published rulebook, in publication order."""
        return [
            event for _row, event in self._stream_events(POLICY_STREAM) if isinstance(event, PolicyPublished)
        ]

    def _stream_events(self, stream: str) -> list[tuple[Any, EventBase]]:
        return [(row, decode_event(row[1])) for row in self._recorder.stream_rows(stream)]

    def stream_version(self, stream: str) -> int:
        """How many events the stream holds (0: none): one indexed lookup, cheap enough for every request."""
        newest = self._application.recorder.select_events(stream, desc=True, limit=1)
        return newest[0].originator_version if newest else 0

    def stream_head(self, stream: str) -> tuple[int, int, bytes] | None:
        """`(version, position, hash)` of the stream's newest event, or None when it has none."""
        return self._recorder.stream_head(stream)

    def stream_records(self, stream: str) -> list[tuple[int, str, EventBase]]:
        """`(position, recorded_at, event)` of every event of one stream, in stream order."""
        return [(row[0], row[2], decode_event(row[1])) for row in self._recorder.stream_rows(stream)]
