"""A transfer may say the cadre moves as its new unit's principal leader (主职): the leader an escalation of
units names follows it, and so does `cohort:principal` (issue 15: "the cadre registered or moved there with
`principal: true` who holds that post on that date").

Method: D1 … D4 rated in 2024Q1 by E1 … E4 under `units-mean-1` (means, ratings_min 2, bottom 3): D1 90,
D2 80, D3 70, D4 60, so D2, D3 and D4 are the bottom three at step 1. L1 … L4 are registered as principal
leaders (2023-06-01); V1, a deputy of D1 in a leadership post, and S1, a clerk of D1 with none.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from ledger import InvalidInput, Ledger
from ledger.domain.events import CadreTransferred, EntryReversed, EventBase
from ledger.projections.service import Projections
from tests.conftest import fixed_clock, registration, source
from tests.integration.test_unit_ratings import MEAN_POLICY, panel, rating

RATERS = ("E1", "E2", "E3", "E4")
SCORES = {"D1": "90", "D2": "80", "D3": "70", "D4": "60"}
MOVED_ON = date(2024, 2, 1)  # within 2024Q1, before its last day


@pytest.fixture
def ledger(store_url: str) -> Iterator[Ledger]:
    with Ledger.open(store_url, clock=fixed_clock) as opened:
        opened.publish_policy(MEAN_POLICY)
        events: list[EventBase] = [
            registration(f"L{n}", on=date(2023, 6, 1), unit_id=f"D{n}", principal=True) for n in range(1, 5)
        ]
        events += [
            registration("V1", on=date(2023, 6, 1), unit_id="D1"),
            registration("S1", on=date(2023, 6, 1), unit_id="D1", leadership=False),
            panel("2024Q1", RATERS),
        ]
        events += [rating(unit, "2024Q1", rater, score) for unit, score in SCORES.items() for rater in RATERS]
        opened.post(events, posted_by="test")
        yield opened


def transfer(cadre_id: str, unit_id: str, principal: bool | None) -> CadreTransferred:
    return CadreTransferred(
        cadre_id=cadre_id, effective_on=MOVED_ON, source=source(), unit_id=unit_id, principal=principal
    )


def leaders(ledger: Ledger, **read: object) -> dict[str, str | None]:
    projections = Projections.open(ledger)
    try:
        view = projections.unit_escalations("2024Q1", **read)  # type: ignore[arg-type]
        return {e.unit_id: None if e.leader is None else e.leader.cadre_id for e in view.escalations}
    finally:
        projections.close()


def principals(ledger: Ledger) -> list[str]:
    projections = Projections.open(ledger)
    try:
        view = projections.rankings("cohort:principal", as_of=date(2024, 3, 31))
        return sorted(entry.cadre_id for entry in view.entries)
    finally:
        projections.close()


def test_registered_principals_lead_their_units(ledger: Ledger) -> None:
    assert leaders(ledger) == {"D2": "L2", "D3": "L3", "D4": "L4"}
    assert principals(ledger) == ["L1", "L2", "L3", "L4"]


def test_a_deputy_moved_as_principal_leads_the_new_unit_and_a_reversal_takes_it_back(ledger: Ledger) -> None:
    before = ledger.head()
    moved = ledger.post([transfer("V1", "D4", True)], posted_by="test").results[0]
    # Two principals in D4 on 2024-03-31: V1 arrived last (2024-02-01, L4 on 2023-06-01), so V1 is named.
    assert leaders(ledger) == {"D2": "L2", "D3": "L3", "D4": "V1"}
    assert leaders(ledger, known_at=before) == {"D2": "L2", "D3": "L3", "D4": "L4"}
    assert principals(ledger) == ["L1", "L2", "L3", "L4", "V1"]
    reversal = EntryReversed(
        cadre_id="V1",
        effective_on=date(2024, 3, 1),
        source=source(),
        target_event_id=moved.event_id,
        reason="调令撤回",
    )
    at = ledger.post([reversal], posted_by="test").position
    assert leaders(ledger) == {"D2": "L2", "D3": "L3", "D4": "L4"}
    assert leaders(ledger, known_at=at - 1)["D4"] == "V1"


def test_a_principal_moved_not_as_principal_leads_nowhere(ledger: Ledger) -> None:
    ledger.post([transfer("L2", "D4", False)], posted_by="test")
    # D2 has no principal leader left; D4 keeps L4 (L2 moved there as a deputy).
    assert leaders(ledger) == {"D2": None, "D3": "L3", "D4": "L4"}
    assert principals(ledger) == ["L1", "L3", "L4"]


def test_a_transfer_without_the_flag_keeps_what_the_cadre_was(ledger: Ledger) -> None:
    ledger.post([transfer("L3", "D4", None)], posted_by="test")
    assert leaders(ledger) == {"D2": "L2", "D3": None, "D4": "L3"}


def test_only_a_cadre_in_a_leadership_post_moves_as_principal(ledger: Ledger) -> None:
    head = ledger.head()
    with pytest.raises(InvalidInput) as refused:
        ledger.post([transfer("S1", "D4", True)], posted_by="test")
    assert (refused.value.field, refused.value.rule) == ("principal", "principal_requires_leadership")
    assert ledger.head() == head


def test_read_as_of_before_a_move_the_leader_is_the_one_in_post_then(ledger: Ledger) -> None:
    # The ratings are dated 2024-02-20; V1 moves into D4 as principal on 2024-03-01.
    moved = CadreTransferred(
        cadre_id="V1", effective_on=date(2024, 3, 1), source=source(), unit_id="D4", principal=True
    )
    ledger.post([moved], posted_by="test")
    assert leaders(ledger, as_of=date(2024, 2, 25))["D4"] == "L4"
    assert leaders(ledger, as_of=date(2024, 3, 31))["D4"] == "V1"
