"""The kept writer state is checked against a fold of the log (`Knowledge.findings`, behind `ledger verify
--read-models`): a state equal to the fold but for the order its sets were built in is no finding (one
demo city in three was reported altered); a state that differs is."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import date

import pytest

import ledger.planning
from ledger.domain.events import EntryReversed, MeritAwarded
from ledger.domain.ids import new_event_id
from ledger.ledger import Ledger
from tests.conftest import fixed_clock, registration, source


def _colliding_ids() -> Iterator[uuid.UUID]:
    """Real version 7 ids whose hashes share a slot of a small set: in a set of them, the order they went in
    is the order they come out."""
    while True:
        candidate = new_event_id()
        if hash(candidate) % 8 == 0:
            yield candidate


@pytest.fixture
def reversed_twice(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Ledger, list[uuid.UUID]]]:
    ids = _colliding_ids()
    monkeypatch.setattr(ledger.planning, "new_event_id", lambda: next(ids))
    with Ledger.open(sqlite_url, clock=fixed_clock) as opened:
        opened.post([registration("C1")])
        merits = opened.post(
            [
                MeritAwarded(
                    cadre_id="C1",
                    effective_on=date(2024, 3, day),
                    source=source(),
                    award="citation",
                    level="county",
                )
                for day in (1, 2)
            ]
        )
        targets = [item.event_id for item in merits.results]
        opened.post(
            [
                EntryReversed(
                    cadre_id="C1",
                    effective_on=date(2024, 4, 1),
                    source=source(),
                    target_event_id=target,
                    reason="复核",
                )
                for target in targets
            ]
        )
        yield opened, targets


def _keep_reversed(opened: Ledger, ids: list[uuid.UUID]) -> list[str]:
    """Keep the writer's state with C1's reversed ids replaced by a set built in the order of `ids`; the
    findings of `verify --read-models` on it."""
    knowledge = opened._writer.knowledge
    (stream,) = [stream for stream in knowledge.cadres if stream.endswith("C1")]
    cadre = knowledge.cadres[stream]
    built: set[uuid.UUID] = set()
    for id_ in ids:
        built.add(id_)
    cadre.state = dataclasses.replace(cadre.state, reversed=built)
    assert knowledge.persist(at_least=0)  # kept: the findings below are about this state
    return [finding.row for finding in opened.writer_state_findings()]


def test_a_kept_state_whose_set_was_built_in_another_order_is_no_finding(
    reversed_twice: tuple[Ledger, list[uuid.UUID]],
) -> None:
    opened, (first, second) = reversed_twice
    built_backwards = {second}
    built_backwards.add(first)
    assert list(built_backwards) != [first, second]  # the fold's order differs: the case at hand
    assert _keep_reversed(opened, [second, first]) == []


def test_a_kept_state_missing_a_reversal_is_a_finding(reversed_twice: tuple[Ledger, list[uuid.UUID]]) -> None:
    opened, (first, _second) = reversed_twice
    found = _keep_reversed(opened, [first])
    assert len(found) == 1 and found[0].startswith("writer cadre") and found[0].endswith("C1")
