"""Concurrent writers on every store: several processes and threads append at once, with overlapping
idempotency keys. Nothing acknowledged is lost, nothing is recorded twice, positions stay dense and the
chain verifies.

Method: each writer posts batches of new merit awards for the same two cadres (so every batch races on the
same aggregates and on the log head) and, every other batch, an event that all writers post under one
shared source key. Afterwards the log is read back and held to every acknowledgement.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from ledger import Ledger
from ledger.domain.events import MeritAwarded, Source
from tests.conftest import fixed_clock, registration

WRITERS = 3
BATCHES = 6
BATCH_SIZE = 5
CADRES = ("C1", "C2")
SHARED = MeritAwarded(
    cadre_id="C1",
    effective_on=date(2025, 2, 1),
    source=Source(system="shared", key="s"),
    award="commendation",
    level="county",
)

Acknowledgement = tuple[str, str, str, int]  # system, key, event_id, position


def _batch(writer: int, number: int) -> list[MeritAwarded]:
    return [
        MeritAwarded(
            cadre_id=CADRES[index % len(CADRES)],
            effective_on=date(2025, 1, 1 + index),
            source=Source(system=f"w{writer}", key=f"{number}-{index}"),
            award="citation",
            level="unit",
        )
        for index in range(BATCH_SIZE)
    ]


def _acknowledged(batch: list[MeritAwarded], result) -> list[Acknowledgement]:
    return [
        (event.source.system, event.source.key, str(item.event_id), item.position)
        for event, item in zip(batch, result.results, strict=True)
    ]


def write(url: str, writer: int) -> list[Acknowledgement]:
    """Post this writer's batches; return what each acknowledged item says."""
    acknowledged: list[Acknowledgement] = []
    with Ledger.open(url, clock=fixed_clock) as ledger:
        for number in range(BATCHES):
            batch = _batch(writer, number) + ([SHARED] if number % 2 else [])
            acknowledged += _acknowledged(batch, ledger.post(batch, posted_by=f"writer-{writer}"))
    return acknowledged


def check(url: str, acknowledged: list[Acknowledgement], new_events: int) -> None:
    with Ledger.open(url, clock=fixed_clock) as ledger:
        log = ledger.events(after=0, limit=100_000)
        assert [entry.position for entry in log] == list(range(1, len(log) + 1)), "dense, in commit order"
        by_source = {
            (e.event.source.system, e.event.source.key): (str(e.event.event_id), e.position) for e in log
        }
        assert len(by_source) == len(log), "each source key recorded once"
        for system, key, event_id, position in acknowledged:
            assert by_source[(system, key)] == (event_id, position), "acknowledged where it was recorded"
        shared = {
            (event_id, position) for system, _k, event_id, position in acknowledged if system == "shared"
        }
        assert len(shared) == 1, "every writer was told the same event for the shared key"
        assert len(log) == 1 + len(CADRES) + new_events
        assert ledger.verify().ok


def _prepare(url: str) -> None:
    with Ledger.open(url, clock=fixed_clock) as ledger:
        ledger.post([registration(cadre_id) for cadre_id in CADRES])


def test_processes_appending_at_once_lose_and_duplicate_nothing(store_url: str) -> None:
    _prepare(store_url)
    with multiprocessing.get_context("spawn").Pool(WRITERS) as pool:
        results = pool.starmap(write, [(store_url, writer) for writer in range(WRITERS)])
    check(store_url, [item for result in results for item in result], WRITERS * BATCHES * BATCH_SIZE + 1)


def test_threads_with_their_own_ledgers_lose_and_duplicate_nothing(store_url: str) -> None:
    _prepare(store_url)
    with ThreadPoolExecutor(WRITERS) as pool:
        results = list(pool.map(lambda writer: write(store_url, writer), range(WRITERS)))
    check(store_url, [item for result in results for item in result], WRITERS * BATCHES * BATCH_SIZE + 1)


def test_threads_sharing_one_ledger_lose_and_duplicate_nothing(store_url: str) -> None:
    _prepare(store_url)
    with Ledger.open(store_url, clock=fixed_clock) as shared_ledger:

        def post(writer: int) -> list[Acknowledgement]:
            acknowledged: list[Acknowledgement] = []
            for number in range(BATCHES):
                batch = [*_batch(writer, number), SHARED]
                acknowledged += _acknowledged(batch, shared_ledger.post(batch))
            return acknowledged

        with ThreadPoolExecutor(WRITERS) as pool:
            results = list(pool.map(post, range(WRITERS)))
    check(store_url, [item for result in results for item in result], WRITERS * BATCHES * BATCH_SIZE + 1)
