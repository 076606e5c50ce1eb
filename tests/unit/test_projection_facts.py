"""Facts read from the stored JSON equal the facts of the decoded events, for every event of a city."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

from ledger import Ledger
from ledger.demo import run_demo
from ledger.domain.events import EVENT_TYPES, KEY_EVENT_TYPES
from ledger.projections.facts import fact_of, facts_of_stored
from tests.conftest import fixed_clock


def test_facts_of_stored_events_equal_facts_of_decoded_events(tmp_path: Path) -> None:
    with Ledger.open(f"sqlite:///{tmp_path / 'city.db'}", clock=fixed_clock) as ledger:
        run_demo(ledger, seed=11, scale="small", today=date(2025, 12, 15))
        head = ledger.head()
        stored = ledger.stored(after=0, limit=head)
        records = ledger.records(after=0, limit=head)
    assert len(stored) == len(records) == head
    assert facts_of_stored(stored) == [fact_of(position, event) for position, event in records]
    seen = Counter(type(event).__struct_config__.tag for _position, event in records)
    # Key events are recorded by the key store, not by the demo: tests/api/test_keys_in_log.py covers them.
    expected = set(EVENT_TYPES) - KEY_EVENT_TYPES
    assert set(seen) == expected, f"the city lacks {expected - set(seen)}"
