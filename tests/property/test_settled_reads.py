"""A read is kept under the earliest position that reads the same: `Index.settled`, checked exhaustively.

`Index.settled(as_of_day, known_at)` claims that the facts after it, up to `known_at`, change no snapshot of
days up to `as_of_day`: the read cache then serves every position between from one entry. A wrong claim
would serve a stale answer, so it is checked here on the drawn logs of the model test (every kind of fact,
posted out of order, reversed, vetoed, sanctioned, recounted under a second policy), at every position of
the log and at every valid day a fact names and the day before it: each array of the snapshot computed at
`known_at` equals the one computed at the settled position, and so do the counting rules' answers that
the eligibility checks read per cadre (counted appraisals, open investigations, vetoes, open recalls), and
the policy in force, which ranks and counts.
Both sides are computed directly (`Snapshot(…)`), not through the code that relies on the claim.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import event as note

from ledger import Ledger
from ledger.domain.periods import period_containing
from ledger.projections.counting_rules import CountingRules
from ledger.projections.facts import day, from_day
from ledger.projections.index import Index, Snapshot
from ledger.projections.service import Projections
from ledger.projections.views import open_recalls, policy_at
from tests.conftest import fixed_clock
from tests.property.test_projections_model import City, build, cities, later_posts

# Sampled evenly from the days the facts name (with the day before each): enough to put one on every
# side of every fact's day in these small logs, few enough to keep an example under a second.
DAYS_CHECKED_MAX = 40


def _days_named(index: Index) -> list[int]:
    days = {int(value) for value in index.scores["counts_from"]}
    for columns in (index.units, index.grades, index.departures, index.appraisals):
        days.update(int(value) for value in columns["day"])
    for fact in index.sparse.values():
        days.update((fact.effective_on, fact.counts_from))
    both = sorted(days | {value - 1 for value in days})
    step = max(1, len(both) // DAYS_CHECKED_MAX)
    return both[::step]


def _arrays(snapshot: Snapshot) -> dict[str, Any]:
    return {
        name: value.tolist()
        for name, value in vars(snapshot).items()
        if isinstance(value, np.ndarray) and name != "known_at"
    }


def _rules(index: Index, as_of_day: int, known_at: int) -> list[Any]:
    answers: list[Any] = [policy_at(index, from_day(as_of_day), known_at)]
    for code in range(len(index.cadres)):
        answers.append(
            (
                [
                    (fact.position, counted)
                    for fact, counted in index.counting.counted_appraisals(code, as_of_day, known_at)
                ],
                sorted(index.counting.open_investigations(code, as_of_day, known_at)),
                index.counting.vetoes_in_force(code, known_at),
                open_recalls(index, code, as_of_day, known_at),
            )
        )
    return answers


def check_settled(index: Index) -> int:
    """Every (day, position) of the index: what `settled` claims holds. How many claims were checked."""
    claims = 0
    for as_of_day in _days_named(index):
        quarter_start = day(period_containing("quarter", from_day(as_of_day)).first_day)
        for known_at in range(index.position + 1):
            # The counted appraisals are kept by what of the sensitive facts a read sees: the kept answer
            # (the cache filled by the reads of this loop, in its order) is a fresh count's.
            assert index.counting.counted_appraisals_all(as_of_day, known_at) == CountingRules(
                index
            ).counted_appraisals_all(as_of_day, known_at), (from_day(as_of_day), known_at)
            settled = index.settled(as_of_day, known_at)
            assert 0 <= settled <= known_at
            if settled == known_at:
                continue
            claims += 1
            for since in (None, quarter_start):
                at_known = Snapshot(index, as_of_day, known_at, since)
                at_settled = Snapshot(index, as_of_day, settled, since)
                assert _arrays(at_settled) == _arrays(at_known), (from_day(as_of_day), known_at, settled)
            assert _rules(index, as_of_day, settled) == _rules(index, as_of_day, known_at)
    return claims


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)
@given(city=cities())
def test_a_snapshot_at_the_settled_position_is_the_snapshot_at_the_read_position(city: City) -> None:
    with (
        tempfile.TemporaryDirectory() as folder,
        Ledger.open(f"sqlite:///{Path(folder) / 'ledger.db'}", clock=fixed_clock) as ledger,
    ):
        projections = build(ledger, city)
        try:
            claims = check_settled(projections.index)
            # Facts posted after the read models answered once, folded by a catch-up; and a restart, whose
            # index restored from its file finds the same facts that change every read.
            later_posts(ledger, city)
            projections.catch_up()
            claims += check_settled(projections.index)
            restarted = Projections.open(ledger)
            try:
                assert restarted.index.position == projections.index.position
                for as_of_day in _days_named(projections.index):
                    assert [
                        restarted.index.settled(as_of_day, known_at)
                        for known_at in range(restarted.index.position + 1)
                    ] == [
                        projections.index.settled(as_of_day, known_at)
                        for known_at in range(projections.index.position + 1)
                    ]
            finally:
                restarted.close()
        finally:
            projections.close()
        note(f"positions settled earlier than read: {claims > 0}")
