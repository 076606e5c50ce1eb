"""Deciding a batch: each item a replay of the log, a repeat of an earlier item, a new event, or a refusal.

One loop (`decide_items`) serves posting (`ledger.writer`), which stops at the first refusal, and the dry
run (`ledger.dry_run`), which reports every refusal and goes on. It decides on a `Plan`: a draft over the
writer's knowledge (`ledger.knowledge.Draft`, copies of the states the batch changes) and the events it
will append, in order. Nothing here writes to the store.

A plan records what it read: the streams (`Draft.read`), and whether it depends on more than its streams
(`reads_all`). After other writers appended, `holds` tells whether the decision still stands, and
`kept_part` keeps the decisions of the cadres they did not touch: a cadre event's decision reads only its
own stream and the rulebook (see docs/decisions.md, "A lost race keeps the decisions it did not touch").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Container, Iterator, Sequence
from datetime import date
from typing import Any, Literal

from ledger.domain.cadre import Recorded, stream_of
from ledger.domain.errors import IntegrityFailure, InvalidInput
from ledger.domain.events import (
    CadreEvent,
    EntryReversed,
    EventBase,
    PolicyPublished,
    UnitEvent,
    recorded_id,
    type_of,
)
from ledger.domain.ids import new_event_id
from ledger.knowledge import Draft, Knowledge, Moved
from ledger.posting import decide, decide_policy, decide_unit, fingerprint
from ledger.store.mapper import decode_event

__all__ = ["ItemKind", "LostRace", "Origin", "Plan", "decide_event", "decide_items", "recorded_fingerprint"]

SourceKey = tuple[str, str]
# Where a posted item's result comes from: ("new", index into the plan's events) or ("old", position).
Origin = tuple[str, int]
# What `decide_items` found for an item (see there).
ItemKind = Literal["new", "old", "old_conflict", "repeat", "repeat_conflict", "invalid", "refused"]
# Decide one new item on the plan: `decide_event` with the writer's own arguments bound.
DecideOne = Callable[[EventBase, "Plan", dict[uuid.UUID, tuple[int, EventBase]]], EventBase]


class LostRace(Exception):
    """Another writer appended, since the decision, something the decided batch read; `moved` is what
    was folded since (None: the decision cannot be kept in part)."""

    def __init__(self, moved: Moved | None) -> None:
        super().__init__()
        self.moved = moved


class Plan(Draft):
    """A decided batch: its draft, the events it will append in order, and where each item's result
    comes from; `holds` tells whether the decision still stands after what other writers appended."""

    __slots__ = (
        "appended",
        "cadres_kept",
        "decided",
        "head",
        "keys",
        "origins",
        "reads_all",
        "recorded_sources",
        "today",
    )

    def __init__(
        self,
        knowledge: Knowledge,
        keys: list[SourceKey],
        recorded_sources: dict[SourceKey, tuple[int, bytes]],
        today: date,
    ) -> None:
        super().__init__(knowledge)
        self.head = knowledge.head  # what the batch was decided against
        self.keys = keys
        self.recorded_sources = recorded_sources
        self.today = today
        self.appended: list[Recorded] = []
        self.decided: dict[int, Recorded] = {}  # by item: the event decided for it
        self.origins: list[Origin] = []
        # True when the decision depends on more than its streams: a policy (its position goes into the
        # book), a unit's event (its rules read every unit), a reversal of an item of the same batch (it
        # records the target's position).
        self.reads_all = False
        self.cadres_kept: frozenset[str] = frozenset()  # streams whose draft a partial decision kept

    def holds(self, moved: Moved, today: date) -> bool:
        """Whether deciding the batch again after `moved` would decide it the same way: nothing it read
        changed."""
        return self.keeps_part(moved, today) and moved.streams.isdisjoint(self.read)

    def keeps_part(self, moved: Moved, today: date) -> bool:
        """Whether the decisions of the items whose streams `moved` did not touch still stand. The
        rulebook is read by every decision; a source key of the batch recorded meanwhile turns an item
        into a replay or a conflict, and moves the items after it."""
        return not (
            moved.everything
            or moved.book
            or self.reads_all
            or today != self.today
            or not moved.sources.isdisjoint(self.keys)
        )

    def kept_part(self, touched: set[str]) -> Plan:
        """A new decision over the current knowledge that keeps this one's drafts of the streams not in
        `touched` (and the items decided for them); the rest is to be decided again."""
        plan = Plan(self.knowledge, self.keys, self.recorded_sources, self.today)
        plan.cadres = {stream: c for stream, c in self.cadres.items() if stream not in touched}
        plan._copied = {stream: c for stream, c in self._copied.items() if stream not in touched}
        plan.versions = {stream: v for stream, v in self.versions.items() if stream not in touched}
        plan.read = self.read - touched
        plan.units = self.units
        plan.cadres_kept = frozenset(plan.read)
        return plan


def decide_items(
    plan: Plan,
    events: Sequence[EventBase],
    fingerprints: Sequence[bytes],
    decide_one: DecideOne,
    *,
    refused: Container[int] = (),
    decided_before: dict[int, Recorded] | None = None,
) -> Iterator[tuple[ItemKind, int, Any]]:
    """Decide each item of `events` on `plan`, in order, yielding `(kind, item, detail)`:

    - `refused` (its index is in `refused`: the caller refused it before), detail None;
    - `old`: its source is recorded with the same content, detail `(position, stored state)`;
      `old_conflict`: with other content;
    - `repeat`: an earlier new item has its source and content, detail `(that item, its index in
      plan.appended)`; `repeat_conflict`: its source with other content, detail that item;
    - `invalid`: a rule refuses it, detail the InvalidInput (the plan is as before it);
    - `new`: decided and folded into the plan, detail its index in `plan.appended`.

    With `decided_before` (the items of a plan lost to a race), an item whose stream the plan kept
    (`Plan.kept_part`) keeps its decided event. The caller may stop at any item (posting stops at the
    first refusal); what was yielded before is in the plan.
    """
    knowledge, appended, keys, recorded_sources = (
        plan.knowledge,
        plan.appended,
        plan.keys,
        plan.recorded_sources,
    )
    in_batch: dict[SourceKey, tuple[bytes, int, int]] = {}  # key → (fingerprint, item, index in appended)
    pending: dict[uuid.UUID, tuple[int, EventBase]] = {}
    for index, (event, key, print_) in enumerate(zip(events, keys, fingerprints, strict=True)):
        if index in refused:
            yield "refused", index, None
            continue
        earlier = recorded_sources.get(key)
        if earlier is not None:
            if recorded_fingerprint(earlier[1], key) != print_:
                yield "old_conflict", index, None
            else:
                yield "old", index, earlier
            continue
        first = in_batch.get(key)
        if first is not None:
            if first[0] != print_:
                yield "repeat_conflict", index, first[1]
            else:
                yield "repeat", index, (first[1], first[2])
            continue
        before = decided_before.get(index) if decided_before is not None else None
        if before is not None and before.originator_id in plan.cadres_kept:
            record = before  # its cadre's draft already holds it
        else:
            try:
                recorded = decide_one(event, plan, pending)
            except InvalidInput as error:
                yield "invalid", index, error
                continue
            stream = stream_of(recorded)
            version = plan.next_version(stream)
            position = knowledge.head + len(appended) + 1
            plan.fold(stream, recorded, position)
            pending[recorded_id(recorded)] = (position, recorded)
            record = Recorded(stream, version, recorded)
        in_batch[key] = (print_, index, len(appended))
        plan.decided[index] = record
        appended.append(record)
        yield "new", index, len(appended) - 1


def decide_event(
    event: EventBase,
    plan: Plan,
    pending: dict[uuid.UUID, tuple[int, EventBase]],
    *,
    posted_by: str,
    event_by_id: Callable[[uuid.UUID], tuple[int, EventBase] | None],
) -> EventBase:
    """The event to record for one submitted item, decided on `plan` (InvalidInput if a rule refuses it).
    `pending` holds the batch's events decided so far by id (a reversal may name one of them)."""
    event_id = new_event_id()
    today = plan.today
    if isinstance(event, PolicyPublished | UnitEvent):
        plan.reads_all = True  # a policy's position is in the book; unit rules read every unit
    if isinstance(event, PolicyPublished):
        return decide_policy(event, book=plan.policies, today=today, posted_by=posted_by, event_id=event_id)
    if isinstance(event, UnitEvent):
        return decide_unit(
            event, units=plan.units, book=plan.policies, today=today, posted_by=posted_by, event_id=event_id
        )
    if not isinstance(event, CadreEvent):  # key events are recorded by the key store only
        raise InvalidInput(
            f"{type_of(event)} is recorded by `ledger keys`, not posted",
            field="type",
            rule="event_type_not_postable",
        )
    target: tuple[int, EventBase] | None = None
    if isinstance(event, EntryReversed):
        target = pending.get(event.target_event_id)
        if target is not None:
            plan.reads_all = True  # the reversal records its target's position, which moves with the head
        else:
            target = event_by_id(event.target_event_id)
    return decide(
        event,
        state=plan.state(event.cadre_id),
        book=plan.policies,
        today=today,
        posted_by=posted_by,
        event_id=event_id,
        target=target[1] if target else None,
        target_position=target[0] if target else None,
    )


def recorded_fingerprint(state: bytes, key: SourceKey) -> bytes:
    """The fingerprint of the submission the event recorded under `key` came from (read from the event
    itself, so that what answers a retry is what the chain holds)."""
    event = decode_event(state)
    if (event.source.system, event.source.key) != key:  # the index and the row disagree: a damaged store
        raise IntegrityFailure(
            f"the source index finds {key[0]}/{key[1]} at an event recorded under another source; "
            "run `ledger verify`",
            reason="index_mismatch",
        )
    return fingerprint(event)
