"""A writer to kill: the batches the reliability tests post, and the process that posts them.

`batch_for(seed, number)` is deterministic — the same (seed, number) gives the same events, byte for byte —
so a test can tell, from the log alone, which items of which batch were recorded, and a restarted writer
can post a batch again (which must replay). Batches vary in size (1 to 400 events) so that a kill lands
sometimes between batches, sometimes inside the write transaction; some register a new cadre, transfer it
and score it in the same batch, so a half-recorded batch would also break the cadre's lifecycle.

`write()` runs in a child process (multiprocessing's forkserver, so a restart costs a fork, not an
interpreter start): it opens the ledger and its read models, then for each batch reports `posting`, posts,
reports the acknowledgement (every item's event id, position, hash and replayed flag), and catches the read
models up — so a kill may also land inside a projection write. Reports go over a one-way pipe, one message
each; only a whole message counts as an acknowledgement.

`check_read_models(ledger)` is what every reliability test asks of the read models afterwards: opened from
their persisted facts and caught up, they equal a rebuild from the log, and each cadre's total equals the
sum of its events' points.
"""

from __future__ import annotations

import random
import traceback
from datetime import date, timedelta
from decimal import Decimal
from multiprocessing.connection import Connection
from typing import Any, Final

import msgspec

from ledger import Ledger
from ledger.domain.cadre import points_of
from ledger.domain.events import (
    CadreEvent,
    CadreRegistered,
    CadreTransferred,
    DeductionApplied,
    EventBase,
    MeritAwarded,
    Source,
)
from ledger.projections.service import Projections
from ledger.results import PostResult
from tests.conftest import fixed_clock, registration

SYSTEM: Final = "crash"
UNITS: Final = ("U0", "U1", "U2")
CADRES: Final = tuple(f"C{number}" for number in range(12))
BATCH_SIZES: Final = (1, 3, 10, 40, 150, 400)
BATCHES_PER_RUN_MAX: Final = 40  # a writer whose parent vanished stops by itself
FIRST_DAY: Final = date(2024, 2, 1)
LAST_DAY: Final = date(2025, 12, 15)  # the fixed clock's today
AWARDS: Final = ("citation", "commendation", "performance_award", "merit_third_class")
LEVELS: Final = ("unit", "county", "municipal")
DEDUCTIONS: Final = ("criticism", "admonishment", "government_warning")


def setup_events() -> list[EventBase]:
    """The cadres every batch may score, registered before any batch."""
    return [
        registration(cadre_id, unit_id=UNITS[index % len(UNITS)], key=f"setup-{cadre_id}")
        for index, cadre_id in enumerate(CADRES)
    ]


def _day(rng: random.Random, first: date) -> date:
    return first + timedelta(days=rng.randrange((LAST_DAY - first).days + 1))


def batch_for(seed: int, number: int, *, system: str = SYSTEM, prefix: str = "") -> list[EventBase]:
    """Batch `number` of the run `seed`: its keys are `<prefix><seed>-<number>-<item>`."""
    rng = random.Random(f"{seed}/{number}/{system}/{prefix}")
    size = rng.choice(BATCH_SIZES)
    events: list[EventBase] = []

    def source() -> Source:
        return Source(system=system, key=f"{prefix}{seed}-{number}-{len(events)}")

    cadres = list(CADRES)
    if size >= 3 and rng.random() < 0.4:
        # A new cadre, moved and scored in the same batch: the batch is only valid whole.
        cadre_id = f"N-{system}-{prefix}{seed}-{number}"
        unit = rng.randrange(len(UNITS))
        registered_on = _day(rng, FIRST_DAY)
        events.append(
            CadreRegistered(
                cadre_id=cadre_id,
                effective_on=registered_on,
                source=source(),
                name="李四",
                unit_id=UNITS[unit],
                grade="一级科员",
                leadership=True,
                principal=False,
                service_started_on=date(2012, 9, 1),
                grade_since=date(2021, 1, 1),
            )
        )
        events.append(
            CadreTransferred(
                cadre_id=cadre_id,
                effective_on=_day(rng, registered_on),
                source=source(),
                unit_id=UNITS[(unit + 1) % len(UNITS)],
            )
        )
        cadres = [cadre_id] * 4 + cadres
        first_day = registered_on
    else:
        first_day = FIRST_DAY
    while len(events) < size:
        cadre_id = rng.choice(cadres)
        day = _day(rng, first_day if cadre_id.startswith("N") else FIRST_DAY)
        if rng.random() < 0.8:
            events.append(
                MeritAwarded(
                    cadre_id=cadre_id,
                    effective_on=day,
                    source=source(),
                    award=rng.choice(AWARDS),  # type: ignore[arg-type]
                    level=rng.choice(LEVELS),  # type: ignore[arg-type]
                )
            )
        else:
            events.append(
                DeductionApplied(
                    cadre_id=cadre_id,
                    effective_on=day,
                    source=source(),
                    kind=rng.choice(DEDUCTIONS),  # type: ignore[arg-type]
                    level="county",
                )
            )
    return events


def acknowledgement(result: PostResult) -> list[tuple[str, int, str, bool]]:
    """What a writer is told about each item: event id, position, hash, replayed."""
    return [(str(item.event_id), item.position, item.hash, item.replayed) for item in result.results]


def _send(connection: Connection, message: dict[str, Any]) -> None:
    connection.send_bytes(msgspec.json.encode(message))


def write(url: str, seed: int, start: int, connection: Connection) -> None:
    """Post batches `start`, `start + 1`, … of run `seed` into `url` until killed; report on `connection`."""
    try:
        with Ledger.open(url, clock=fixed_clock) as ledger:
            projections = Projections.open(ledger)
            _send(connection, {"opened": ledger.head()})
            for number in range(start, start + BATCHES_PER_RUN_MAX):
                batch = batch_for(seed, number)
                _send(connection, {"posting": number})
                result = ledger.post(batch, posted_by="crash-writer")
                _send(connection, {"ack": number, "items": acknowledgement(result)})
                projections.catch_up()
            projections.close()
    except BrokenPipeError:
        return  # the test is gone: nobody to report to
    except BaseException:
        _send(connection, {"error": traceback.format_exc()})
        raise


AS_OF_DAYS: Final = (date(2024, 12, 31), date(2025, 6, 30), LAST_DAY)
BOARD_PERIODS: Final = ("2025Q2", "2025Q4")


def read_models(projections: Projections) -> dict[str, Any]:
    """Rankings of every scope at several dates, and boards, as plain data."""
    scopes = ["all", *(f"unit:{unit_id}" for unit_id in sorted(projections.index.unit_ids))]
    views: dict[str, Any] = {}
    for as_of in AS_OF_DAYS:
        for scope in scopes:
            views[f"rankings {scope} {as_of}"] = msgspec.to_builtins(projections.rankings(scope, as_of=as_of))
    for period in BOARD_PERIODS:
        views[f"boards {period}"] = msgspec.to_builtins(projections.boards(period))
    return views


def log_totals(ledger: Ledger) -> dict[str, Decimal]:
    """Each cadre's total as the log has it: the sum of its events' points (all dated by `LAST_DAY`)."""
    totals: dict[str, Decimal] = {}
    after = 0
    while records := ledger.records(after=after):
        for _position, event in records:
            if isinstance(event, CadreEvent):
                totals[event.cadre_id] = totals.get(event.cadre_id, Decimal(0)) + points_of(event)
        after = records[-1][0]
    return totals


def check_read_models(ledger: Ledger) -> int:
    """The read models as kept (persisted facts, caught up) equal a rebuild, and their totals the log's.

    Returns how many views were compared. Rebuilding switches every process to the new version.
    """
    projections = Projections.open(ledger)
    try:
        assert projections.position() == ledger.head(), "the read models caught up with the whole log"
        kept = read_models(projections)
        entries = kept[f"rankings all {LAST_DAY}"]["entries"]
        ranked = {entry["cadre_id"]: Decimal(entry["total"]) for entry in entries}
        assert ranked == log_totals(ledger), "every total is the sum of the cadre's points in the log"
        projections.rebuild()
        rebuilt = read_models(projections)
        for name, view in kept.items():
            assert view == rebuilt[name], f"{name}: the kept read model differs from a rebuild"
        return len(kept)
    finally:
        projections.close()
