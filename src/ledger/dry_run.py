"""The dry run: what posting a file or a body would do, item by item, recording nothing (`Ledger.check`).

It decides the items with posting's own loop (`ledger.planning.decide_items`), on one plan, but goes on
past a refused item: the item is reported and left out of the plan, and the next is decided. So every
refusal is found in one run, and an item that depends on an earlier one (a merit for a cadre registered
above it) is decided as posting the whole sequence would decide it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Final, Literal

import msgspec

from ledger.domain.cadre import points_of
from ledger.domain.errors import InvalidInput
from ledger.domain.events import EventBase, recorded_id, type_of
from ledger.planning import DecideOne, Plan, decide_items
from ledger.store.mapper import decode_event

__all__ = ["CHECK_SIZE_MAX", "CheckedItem", "DryRun", "check_items"]

# A dry run decides a whole file as one draft (a file is posted in batches that each see the ones before);
# this bounds the memory of that draft, not the size of a transaction.
CHECK_SIZE_MAX: Final = 100_000

Outcome = Literal["new", "replay", "invalid", "conflict"]


class CheckedItem(msgspec.Struct, frozen=True, kw_only=True):
    """One item of a dry run: what posting it would do (`new`, `replay`), or why it would be refused
    (`invalid`, `conflict`: `field`, `rule` and `message` say what to change).

    `points` is what a new item would count, or what the recorded event it replays counts; `event_id`
    and `position` are the recorded event's (a replay of the log), `replay_of` the index of the earlier
    item of the same run it repeats (or, for a conflict, whose source key it reuses). A new item has no
    id or position: nothing was recorded.
    """

    item: int
    type: str
    outcome: Outcome
    points: Decimal | None = None
    event_id: uuid.UUID | None = None
    position: int | None = None
    replay_of: int | None = None
    field: str | None = None
    rule: str | None = None
    message: str | None = None


class DryRun(msgspec.Struct, frozen=True):
    """What posting `items` would do, decided against the log at `position`; `valid` when no item would
    be refused. Nothing was recorded."""

    valid: bool
    position: int
    items: list[CheckedItem]


def check_items(
    plan: Plan,
    events: Sequence[EventBase],
    fingerprints: Sequence[bytes],
    refused: dict[int, InvalidInput],
    decide_one: DecideOne,
) -> DryRun:
    """Every item of `events` decided on `plan` (whose sources leave out the `refused` items' keys)."""
    items: list[CheckedItem] = []
    for kind, index, detail in decide_items(plan, events, fingerprints, decide_one, refused=refused):
        event_type = type_of(events[index])
        system, key = plan.keys[index]
        if kind == "new":
            points = points_of(plan.appended[detail].event)
            items.append(CheckedItem(item=index, type=event_type, outcome="new", points=points))
        elif kind == "old":
            logged = decode_event(detail[1])
            items.append(
                CheckedItem(
                    item=index,
                    type=event_type,
                    outcome="replay",
                    points=points_of(logged),
                    event_id=recorded_id(logged),
                    position=detail[0],
                )
            )
        elif kind == "repeat":
            first, appended = detail
            points = points_of(plan.appended[appended].event)
            items.append(
                CheckedItem(item=index, type=event_type, outcome="replay", points=points, replay_of=first)
            )
        elif kind == "old_conflict":
            items.append(
                _conflict(index, event_type, f"source {system}/{key} was recorded with other content")
            )
        elif kind == "repeat_conflict":
            message = f"source {system}/{key} appears twice with other content"
            items.append(_conflict(index, event_type, message, first=detail))
        else:  # refused before deciding, or by a rule
            items.append(_refused(index, event_type, refused[index] if kind == "refused" else detail))
    valid = all(item.outcome in ("new", "replay") for item in items)
    return DryRun(valid, plan.head, items)


def _refused(index: int, kind: str, error: InvalidInput) -> CheckedItem:
    return CheckedItem(
        item=index, type=kind, outcome="invalid", field=error.field, rule=error.rule, message=error.message
    )


def _conflict(index: int, kind: str, message: str, *, first: int | None = None) -> CheckedItem:
    """A refused reuse of a source key; `first`, the earlier item of the run that holds it (each face
    names it its own way: a row of a sheet, an item of a body)."""
    return CheckedItem(
        item=index,
        type=kind,
        outcome="conflict",
        replay_of=first,
        field="source.key",
        rule="exists_with_different_content",
        message=message,
    )
