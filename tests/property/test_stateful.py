"""The ledger driven step by step beside a plain model (SPEC §12 Model-based stateful tests).

Goal: whatever sequence of posts, replays, conflicting replays, reversals, rebuilds and restarts a user
makes, the ledger decides every post as a plain model of the rules of SPEC §3 and §6 does, the log only
grows, the chain verifies, and every read model answers at any (as_of, known_at) what a naive replay of
the log answers. Method: a hypothesis `RuleBasedStateMachine` drives a real ledger — through the library
(SQLite, and a short run on PostgreSQL), and through the HTTP API (Litestar's test client over
`create_app(services=…)` with a poster key and an admin key) — beside `PlainModel`, a few dictionaries
that predict each post's outcome (accepted with dense new positions, replayed with the original result,
refused by which rule at which item, or a conflict) without computing points.

Rules: registrations, merits, deductions, appraisals, transfers, departures, reversals (of any recorded
event, as its cadre or another), batches of several backdated postings (atomic), replays of a whole
earlier batch, a recorded source key with other content (a conflict), an old event beside a new one,
rebuilds of the read models, and restarts (new read models loaded from their stored facts; through HTTP, a
new app). Two rules check the rules of issue 9 (notes/rules_spec.md) as they run:

- order of recording never matters (§3): two new cadres alike in everything get an excellent appraisal of
  a year and a sanction that caps it (dated in that year or the one before), one appraisal first, the
  other sanction first (one batch each, or one posting at a time, interleaved or not); at every read
  date their totals, components, history totals, eligibility checks and ranks (the excellent count is a
  tie-breaker) are equal, and equal the naive model's;
- a veto belongs to its year (§2): an award of year Y, a veto for Y decided in Y or early in Y+1, another
  award of Y, then the veto reversed; while the veto is in force every barred award of Y (the two, and any
  earlier ones) counts 0.00 in standings and history totals, read today and as of the last day of Y (before
  a decision of Y+1 is dated); after the reversal they count again.

After every step the `@invariant`s check:

- the log only grows: positions are dense from 1, the hashes and event ids of every position seen before
  are unchanged, and each recorded event holds exactly what was posted (server fields aside);
- the chain verifies through the head;
- at the (as_of, known_at) drawn with the step, each cadre's total, components, unit and status, its
  eligibility checks, a ranking of `all` and of a unit, and each cadre's history total equal those of
  `tests/property/naive.py`, which recomputes them from the raw log with loops (counted points: vetoes,
  sanctions' appraisal caps); the server fields of the rules (a deduction's appraisal years, a veto's
  barred awards, an appraisal's uncapped points) are those the policy gives.

Events are dated within three years before the fixed today, in any order (most postings are late:
backdated behind later-dated ones), and some after today or before the cadre's registration.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import event as note
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from litestar.testing import TestClient
from msgspec import UNSET

from ledger import Conflict, InvalidInput, Ledger, NotFound
from ledger.access import KeyStore, Role
from ledger.api import ApiSettings, create_app
from ledger.api.services import ReadModels, Services
from ledger.domain.events import (
    AWARDS,
    CADRE_EVENT_TYPES,
    LEVELS,
    REVERSIBLE_TYPES,
    SERVER_FIELDS,
    AppraisalRecorded,
    CadreDeparted,
    CadreEvent,
    CadreRegistered,
    CadreTransferred,
    DeductionApplied,
    EntryReversed,
    EventBase,
    MeritAwarded,
    Source,
    VetoApplied,
    type_of,
)
from ledger.projections.service import Projections
from tests.conftest import TODAY, drop_schema, fixed_clock, require_postgres
from tests.property.naive import Model

START = date(2023, 1, 1)
DAYS = (TODAY - START).days
CADRE_IDS = ("C0", "C1", "C2", "C3", "C4")
UNITS = ("U1", "U2", "U3")
DEDUCTION_KINDS = ("criticism", "admonishment", "party_warning", "demerit", "government_warning")
RESULTS = ("excellent", "competent", "basically_competent", "incompetent")
# Sanctions that cap the appraisal of their year (or of it and the next) under the illustrative policy.
CAPPING_KINDS = ("admonishment", "government_warning", "demerit", "major_demerit", "demotion", "dismissal")
SYSTEM = "prop"
READ_MODELS_OPEN_SECONDS = 30.0

# Who and when a posting is for: (which cadre, how to date it, a number of days); see `LedgerMachine.aim`.
aims = st.tuples(st.integers(0, 99), st.integers(0, 9), st.integers(0, DAYS))
# Where the invariants read: days after START (some before it, some after today) and thousandths of the
# model's log (0: only the policy `Ledger.open` published); today and the whole log more often.
read_points = st.tuples(
    st.one_of(st.integers(-30, DAYS + 60), st.just(DAYS)), st.one_of(st.integers(0, 1_000), st.just(1_000))
)
scoring = st.one_of(
    st.tuples(st.just("merit"), st.sampled_from(AWARDS), st.sampled_from(LEVELS)),
    st.tuples(st.just("deduction"), st.sampled_from(DEDUCTION_KINDS), st.sampled_from(LEVELS)),
    st.tuples(st.just("appraisal"), st.sampled_from(RESULTS), st.integers(0, 1)),
)


def on(day: int) -> date:
    return START + timedelta(days=day)


# What a driver answers.


class Refused(Exception):
    """A post the ledger refused: `kind` is "invalid" (with the rule) or "conflict"; `item` the index."""

    def __init__(self, kind: str, item: int | None, rule: str | None) -> None:
        super().__init__(f"{kind} at item {item}: {rule}")
        self.kind = kind
        self.item = item
        self.rule = rule


@dataclass(frozen=True)
class Posted:
    event_id: uuid.UUID
    position: int
    hash: str
    replayed: bool


@dataclass(frozen=True)
class Standing:
    total: Decimal
    components: dict[str, Decimal]
    unit_id: str
    status: str


class LibraryDriver:
    """The ledger and its read models through the Python library."""

    name = "library"

    def __init__(self, url: str) -> None:
        self.ledger = Ledger.open(url, clock=fixed_clock)
        self.projections = Projections.open(self.ledger)

    def close(self) -> None:
        self.projections.close()
        self.ledger.close()

    def post(self, events: Sequence[EventBase]) -> list[Posted]:
        try:
            result = self.ledger.post(events)
        except InvalidInput as error:
            raise Refused("invalid", error.item, error.rule) from None
        except Conflict as error:
            raise Refused("conflict", error.item, None) from None
        return [Posted(item.event_id, item.position, item.hash, item.replayed) for item in result.results]

    def verify(self) -> tuple[bool, int]:
        report = self.ledger.verify()
        return report.ok, report.verified_through

    def standing(self, cadre_id: str, as_of: date, known_at: int) -> Standing | None:
        try:
            view = self.projections.cadre(cadre_id, as_of=as_of, known_at=known_at)
        except NotFound:
            return None
        assert view.position == known_at
        return Standing(view.total, msgspec.structs.asdict(view.components), view.unit_id, view.status)

    def ranking(self, scope: str, as_of: date, known_at: int) -> list[tuple[int, str, Decimal]]:
        view = self.projections.rankings(scope, as_of=as_of, known_at=known_at)
        return [(entry.rank, entry.cadre_id, entry.total) for entry in view.entries]

    def history_total(self, cadre_id: str, as_of: date, known_at: int) -> Decimal:
        return self.ledger.history(cadre_id, as_of=as_of, known_at=known_at).total

    def eligibility(self, cadre_id: str, as_of: date, known_at: int) -> list[tuple[str, bool]]:
        view = self.projections.eligibility(cadre_id, as_of=as_of, known_at=known_at)
        return [(check.check, check.passed) for check in view.checks]

    def rebuild(self) -> int:
        return self.projections.rebuild()

    def restart(self) -> None:
        """A new process's read models: loaded from their stored facts, then caught up."""
        self.projections.close()
        self.projections = Projections.open(self.ledger)


class HttpDriver:
    """The same through the HTTP API: posts with a poster key, reads and verification with an admin key."""

    name = "http"

    def __init__(self, url: str) -> None:
        self.ledger = Ledger.open(url, clock=fixed_clock)
        self.keys = KeyStore.open(url)
        types = sorted(CADRE_EVENT_TYPES)
        poster = self.keys.create("prop-sync", Role.poster, system=SYSTEM, event_types=types)
        admin = self.keys.create("prop-admin", Role.admin)
        self.poster = {"Authorization": f"Bearer {poster.token}"}
        self.admin = {"Authorization": f"Bearer {admin.token}"}
        self.start()

    def start(self) -> None:
        """Start an app over the ledger, as a server process does; its read models load in the background."""
        self.url = self.ledger.url
        self.read_models = ReadModels(self.ledger)
        services = Services(self.ledger, self.keys, self.read_models)
        self.client = TestClient(create_app(ApiSettings(database_url=self.url), services=services))
        self.client.__enter__()
        assert self.read_models.wait(READ_MODELS_OPEN_SECONDS), self.read_models.failure

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.keys.close()
        self.ledger.close()

    def post(self, events: Sequence[EventBase]) -> list[Posted]:
        body = msgspec.json.encode({"events": list(events)})
        response = self.client.post(
            "/v1/events", content=body, headers={**self.poster, "Content-Type": "application/json"}
        )
        if response.status_code in (200, 201):
            results = response.json()["results"]
            assert (response.status_code == 200) == all(item["replayed"] for item in results)
            return [
                Posted(uuid.UUID(item["event_id"]), item["position"], item["hash"], item["replayed"])
                for item in results
            ]
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        if response.status_code == 422:
            raise Refused("invalid", problem.get("item"), problem.get("rule"))
        if response.status_code == 409:
            raise Refused("conflict", problem.get("item"), None)
        raise AssertionError(f"unexpected answer {response.status_code}: {response.text}")

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=self.admin)

    def verify(self) -> tuple[bool, int]:
        response = self.get("/v1/audit/verify")
        assert response.status_code == 200, response.text
        report = response.json()
        return report["ok"], report["verified_through"]

    def standing(self, cadre_id: str, as_of: date, known_at: int) -> Standing | None:
        response = self.get(f"/v1/cadres/{cadre_id}", as_of=as_of.isoformat(), known_at=str(known_at))
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        view = response.json()
        assert view["position"] == known_at
        components = {name: Decimal(value) for name, value in view["components"].items()}
        return Standing(Decimal(view["total"]), components, view["unit_id"], view["status"])

    def ranking(self, scope: str, as_of: date, known_at: int) -> list[tuple[int, str, Decimal]]:
        response = self.get(
            "/v1/rankings", scope=scope, as_of=as_of.isoformat(), known_at=str(known_at), limit=1_000
        )
        assert response.status_code == 200, response.text
        return [
            (entry["rank"], entry["cadre_id"], Decimal(entry["total"]))
            for entry in response.json()["entries"]
        ]

    def history_total(self, cadre_id: str, as_of: date, known_at: int) -> Decimal:
        response = self.get(f"/v1/cadres/{cadre_id}/history", as_of=as_of.isoformat(), known_at=str(known_at))
        assert response.status_code == 200, response.text
        return Decimal(response.json()["total"])

    def eligibility(self, cadre_id: str, as_of: date, known_at: int) -> list[tuple[str, bool]]:
        response = self.get(
            f"/v1/cadres/{cadre_id}/eligibility", as_of=as_of.isoformat(), known_at=str(known_at)
        )
        assert response.status_code == 200, response.text
        return [(check["check"], check["passed"]) for check in response.json()["checks"]]

    def rebuild(self) -> int:
        return self.read_models.get().rebuild()

    def restart(self) -> None:
        """Stop the app and start another: its read models load from their stored facts."""
        self.client.__exit__(None, None, None)
        self.start()


# The plain model.


@dataclass
class CadreModel:
    """What the rules of SPEC §3 need to know about a cadre, keyed by the events' ids."""

    registered_on: date
    units: dict[uuid.UUID, tuple[date, str]]
    departures: dict[uuid.UUID, date] = field(default_factory=dict)
    appraisal_years: dict[int, uuid.UUID] = field(default_factory=dict)
    reversed: set[uuid.UUID] = field(default_factory=set)

    def unit_on(self, day: date) -> str:
        """The unit of the latest change dated on or before `day` (ties: the later recording)."""
        dated = [(change[0], order, change[1]) for order, change in enumerate(self.units.values())]
        before = [entry for entry in dated if entry[0] <= day]
        return max(before)[2] if before else min(dated)[2]


@dataclass
class Recorded:
    """A recorded event as the model knows it."""

    event: EventBase
    position: int
    event_id: uuid.UUID
    hash: str


class PlainModel:
    """The log as a list, the sources as a dict, and the few rules that decide whether a post is accepted."""

    def __init__(self, head: int) -> None:
        # The positions before the model started (the policy `Ledger.open` publishes).
        self.preamble = head
        self.log: list[Recorded] = []
        self.by_source: dict[tuple[str, str], Recorded] = {}
        self.by_id: dict[uuid.UUID, Recorded] = {}
        self.cadres: dict[str, CadreModel] = {}
        self.batches: list[list[EventBase]] = []
        self.keys = iter(range(1, 10**9))

    @property
    def head(self) -> int:
        return self.preamble + len(self.log)

    def source(self) -> Source:
        return Source(system=SYSTEM, key=f"k{next(self.keys)}")

    def decide(self, events: Sequence[EventBase]) -> tuple[str, int | None, str | None]:
        """("ok", None, None), ("conflict", item, None) or ("invalid", item, rule) for a batch."""
        cadres = copy.deepcopy(self.cadres)
        in_batch: dict[tuple[str, str], EventBase] = {}
        for index, event in enumerate(events):
            key = (event.source.system, event.source.key)
            earlier = self.by_source.get(key)
            if earlier is not None:
                if _client_content(earlier.event) != event:
                    return "conflict", index, None
                continue
            if key in in_batch:
                if in_batch[key] != event:
                    return "conflict", index, None
                continue
            refusal = self._refusal(cadres, event)
            if refusal is not None:
                return "invalid", index, refusal
            in_batch[key] = event
            # A placeholder id: events in a batch are never reversed within it.
            self._apply(cadres, event, uuid.uuid4())
        return "ok", None, None

    def _refusal(self, cadres: dict[str, CadreModel], event: EventBase) -> str | None:
        assert isinstance(event, CadreEvent)
        if event.effective_on > TODAY:
            return "effective_on_must_not_be_in_future"
        cadre = cadres.get(event.cadre_id)
        if isinstance(event, CadreRegistered):
            return "cadre_must_not_be_registered_twice" if cadre is not None else None
        if cadre is None:
            return "cadre_must_be_registered"
        if event.effective_on < cadre.registered_on:
            return "effective_on_must_not_precede_registration"
        departed_on = min(cadre.departures.values()) if cadre.departures else None
        reverses_departure = isinstance(event, EntryReversed) and event.target_event_id in cadre.departures
        if departed_on is not None and event.effective_on > departed_on and not reverses_departure:
            return "effective_on_must_not_follow_departure"
        if isinstance(event, CadreDeparted) and cadre.departures:
            return "cadre_must_not_depart_twice"
        if isinstance(event, CadreTransferred) and event.unit_id == cadre.unit_on(event.effective_on):
            return "transfer_must_change_unit"
        if isinstance(event, AppraisalRecorded) and event.year in cadre.appraisal_years:
            return "appraisal_must_be_recorded_once_per_year"
        if isinstance(event, EntryReversed):
            target = self.by_id.get(event.target_event_id)
            if event.target_event_id in cadre.reversed:
                return "reversal_target_must_not_be_reversed"
            if (
                target is None
                or getattr(target.event, "cadre_id", None) != event.cadre_id
                or type_of(target.event) not in REVERSIBLE_TYPES
            ):
                return "reversal_target_must_be_reversible"
            if event.effective_on < target.event.effective_on:
                return "reversal_must_not_precede_target"
        return None

    def _apply(self, cadres: dict[str, CadreModel], event: EventBase, event_id: uuid.UUID) -> None:
        assert isinstance(event, CadreEvent)
        if isinstance(event, CadreRegistered):
            cadres[event.cadre_id] = CadreModel(
                event.effective_on, {event_id: (event.effective_on, event.unit_id)}
            )
            return
        cadre = cadres[event.cadre_id]
        if isinstance(event, CadreTransferred):
            cadre.units[event_id] = (event.effective_on, event.unit_id)
        elif isinstance(event, CadreDeparted):
            cadre.departures[event_id] = event.effective_on
        elif isinstance(event, AppraisalRecorded):
            cadre.appraisal_years[event.year] = event_id
        elif isinstance(event, EntryReversed):
            target = event.target_event_id
            cadre.reversed.add(target)
            cadre.units.pop(target, None)
            cadre.departures.pop(target, None)
            for year, appraisal in list(cadre.appraisal_years.items()):
                if appraisal == target:
                    del cadre.appraisal_years[year]

    def record(self, events: Sequence[EventBase], posted: list[Posted], *, replay: bool = False) -> None:
        """Take in an accepted batch: new events at the next positions, replays with their old results."""
        for event, item in zip(events, posted, strict=True):
            key = (event.source.system, event.source.key)
            earlier = self.by_source.get(key)
            if earlier is not None:
                assert item.replayed, f"{key} was recorded before: a replay"
                assert (item.event_id, item.position, item.hash) == (
                    earlier.event_id,
                    earlier.position,
                    earlier.hash,
                ), "a replay answers with the original result"
                continue
            assert not item.replayed, f"{key} is new"
            assert item.position == self.head + 1, "positions are dense, in batch order"
            recorded = Recorded(event, item.position, item.event_id, item.hash)
            self.log.append(recorded)
            self.by_source[key] = recorded
            self.by_id[item.event_id] = recorded
            self._apply(self.cadres, event, item.event_id)
        if not replay:
            self.batches.append(list(events))


def _points(event: EventBase) -> Decimal:
    """The points the ledger recorded for an event."""
    assert isinstance(event.points, Decimal)
    return event.points


def _client_content(event: EventBase) -> EventBase:
    """A recorded event without what the ledger filled in: what the client posted."""
    cleared: dict[str, Any] = dict.fromkeys(SERVER_FIELDS[type_of(event)], UNSET)
    if event.override_reason is None:
        cleared["points"] = UNSET
    return msgspec.structs.replace(event, **cleared)


# The machine.


class LedgerMachine(RuleBasedStateMachine):
    """Posts, replays, reversals and rebuilds against a real ledger, checked against `PlainModel`."""

    driver_class: Callable[[str], LibraryDriver | HttpDriver] = LibraryDriver
    # A URL for a fresh ledger and a function that disposes of it; set by each test.
    open_store: Callable[[], tuple[str, Callable[[], None]]]

    def __init__(self) -> None:
        super().__init__()
        url, self.dispose = type(self).open_store()
        self.driver = type(self).driver_class(url)
        self.model = PlainModel(self.driver.ledger.head())
        self.read_at = (DAYS, 1_000)
        self.twins = 0
        self.seen: list[tuple[uuid.UUID, str]] = [
            (logged.event.event_id, logged.hash)  # type: ignore[misc]
            for logged in self.driver.ledger.events(after=0, limit=10_000)
        ]

    def teardown(self) -> None:
        self.driver.close()
        self.dispose()

    # Posting.

    def post(self, events: list[EventBase]) -> None:
        """Post a batch; the ledger must decide it as the model does, and a refusal records nothing."""
        expected = self.model.decide(events)
        head = self.driver.ledger.head()
        try:
            posted = self.driver.post(events)
        except Refused as refused:
            note(f"refused: {refused.rule or refused.kind}")
            assert (refused.kind, refused.item, refused.rule) == expected, (
                f"the ledger refused {refused}, the model expected {expected}: {events}"
            )
            assert self.driver.ledger.head() == head, "a refused batch records nothing"
            return
        assert expected == ("ok", None, None), f"the ledger accepted a batch the model refuses ({expected})"
        note(f"accepted a batch of {len(events)}")
        self.model.record(events, posted)

    @initialize(
        registrations=st.lists(
            st.tuples(st.sampled_from(CADRE_IDS), st.integers(0, 400), st.sampled_from(UNITS), st.booleans()),
            min_size=1,
            max_size=4,
            unique_by=lambda spec: spec[0],
        ),
        at=read_points,
    )
    def register_first_cadres(
        self, registrations: list[tuple[str, int, str, bool]], at: tuple[int, int]
    ) -> None:
        self.read_at = at
        self.post([self.registration(*spec) for spec in registrations])

    def registration(self, cadre_id: str, day: int, unit_id: str, leadership: bool) -> CadreRegistered:
        registered_on = on(day)
        return CadreRegistered(
            cadre_id=cadre_id,
            effective_on=registered_on,
            source=self.model.source(),
            name=f"干部{cadre_id}",
            unit_id=unit_id,
            grade="一级科员",
            leadership=leadership,
            principal=False,
            service_started_on=registered_on - timedelta(days=3_000 + 40 * day),
            grade_since=registered_on - timedelta(days=400),
        )

    def aim(self, whom: tuple[int, int, int], *, registering: bool = False) -> tuple[str, date]:
        """The cadre and date of a posting: mostly a registered cadre (an unregistered one when registering)
        on a day between its registration and today or its departure (a registration: in the first half of
        the three years); one time in ten any cadre, one in ten any day since START (maybe before the
        registration), one in ten after today."""
        choice, how, days = whom
        known = sorted(self.model.cadres)
        pool = [cadre_id for cadre_id in CADRE_IDS if cadre_id not in known] if registering else known
        cadre_id = pool[choice % len(pool)] if pool and how != 9 else CADRE_IDS[choice % len(CADRE_IDS)]
        cadre = self.model.cadres.get(cadre_id)
        if how == 0:
            return cadre_id, TODAY + timedelta(days=1 + days % 40)
        if registering:
            return cadre_id, on(days // 2)
        if how == 1 or cadre is None:
            return cadre_id, on(days)
        last = min(cadre.departures.values(), default=TODAY)
        span = (last - cadre.registered_on).days
        return cadre_id, cadre.registered_on + timedelta(days=days % (span + 1))

    @rule(whom=aims, unit_id=st.sampled_from(UNITS), leadership=st.booleans(), at=read_points)
    def register(
        self, whom: tuple[int, int, int], unit_id: str, leadership: bool, at: tuple[int, int]
    ) -> None:
        self.read_at = at
        cadre_id, registered_on = self.aim(whom, registering=True)
        self.post([self.registration(cadre_id, (registered_on - START).days, unit_id, leadership)])

    def scoring_event(self, whom: tuple[int, int, int], what: tuple[Any, ...]) -> EventBase:
        cadre_id, day = self.aim(whom)
        common: dict[str, Any] = {"cadre_id": cadre_id, "effective_on": day, "source": self.model.source()}
        kind, first, second = what
        if kind == "merit":
            return MeritAwarded(**common, award=first, level=second, document="文号 7")
        if kind == "deduction":
            return DeductionApplied(**common, kind=first, level=second, note="问责")
        return AppraisalRecorded(**common, year=day.year - second, result=first)

    @rule(whom=aims, what=scoring, at=read_points)
    def score(self, whom: tuple[int, int, int], what: tuple[Any, ...], at: tuple[int, int]) -> None:
        self.read_at = at
        self.post([self.scoring_event(whom, what)])

    @rule(
        postings=st.lists(st.tuples(aims, scoring), min_size=2, max_size=6),
        at=read_points,
    )
    def post_a_backdated_batch(
        self, postings: list[tuple[tuple[int, int, int], tuple[Any, ...]]], at: tuple[int, int]
    ) -> None:
        """Several postings in one batch, dated anywhere: all recorded or (one invalid) none."""
        self.read_at = at
        self.post([self.scoring_event(*posting) for posting in postings])

    @rule(whom=aims, unit_id=st.sampled_from(UNITS), at=read_points)
    def transfer(self, whom: tuple[int, int, int], unit_id: str, at: tuple[int, int]) -> None:
        self.read_at = at
        cadre_id, day = self.aim(whom)
        source = self.model.source()
        self.post([CadreTransferred(cadre_id=cadre_id, effective_on=day, source=source, unit_id=unit_id)])

    @rule(whom=aims, at=read_points)
    def depart(self, whom: tuple[int, int, int], at: tuple[int, int]) -> None:
        self.read_at = at
        cadre_id, day = self.aim(whom)
        source = self.model.source()
        self.post([CadreDeparted(cadre_id=cadre_id, effective_on=day, source=source, reason="retired")])

    @precondition(lambda self: self.model.log)
    @rule(choice=st.integers(0, 10**6), delay=st.integers(0, 400), how=st.integers(0, 9), at=read_points)
    def reverse(self, choice: int, delay: int, how: int, at: tuple[int, int]) -> None:
        """Reverse a recorded score or lifecycle event; one time in ten any recorded event (a registration
        or a reversal cannot be reversed, nor anything twice), one in ten as another cadre (refused)."""
        self.read_at = at
        candidates = [
            recorded
            for recorded in self.model.log
            if type_of(recorded.event) in REVERSIBLE_TYPES
            and all(recorded.event_id not in cadre.reversed for cadre in self.model.cadres.values())
        ]
        if how == 0 or not candidates:
            candidates = self.model.log
        target = candidates[choice % len(candidates)]
        cadre_id = target.event.cadre_id  # type: ignore[attr-defined]
        if how == 1:
            others = [other for other in CADRE_IDS if other != cadre_id]
            cadre_id = others[choice % len(others)]
        reversal = EntryReversed(
            cadre_id=cadre_id,
            effective_on=min(target.event.effective_on + timedelta(days=delay), TODAY),
            source=self.model.source(),
            target_event_id=target.event_id,
            reason="复核",
        )
        self.post([reversal])

    # Issue 9: the order of recording never matters (rules §3), and a veto belongs to its year (rules §2).

    def accepted(self, events: Sequence[EventBase]) -> bool:
        """Post a batch as `post` does (checked against the plain model); whether it was recorded."""
        head = self.model.head
        self.post(list(events))
        return self.model.head == head + len(events)

    @rule(
        day=st.integers(0, DAYS // 2),
        years_later=st.integers(0, 2),
        kind=st.sampled_from(CAPPING_KINDS),
        sanctioned=st.tuples(st.integers(0, 1), st.integers(1, 12)),
        interleaved=st.booleans(),
        one_batch=st.booleans(),
        at=read_points,
    )
    def twins_get_an_excellent_year_and_its_sanction_in_either_order(
        self,
        day: int,
        years_later: int,
        kind: str,
        sanctioned: tuple[int, int],
        interleaved: bool,
        one_batch: bool,
        at: tuple[int, int],
    ) -> None:
        """Two new cadres alike in everything get an excellent appraisal of a year and a capping sanction
        dated in that year or the one before: one appraisal first, the other sanction first. Their totals,
        components, histories, eligibility checks and ranks (the excellent count is a tie-breaker) are
        equal at every read date, and equal the naive model's."""
        self.read_at = at
        self.twins += 1
        unit_id = f"TW{self.twins}"
        first, second = f"T{self.twins}a", f"T{self.twins}b"
        if not self.accepted(
            [self.registration(first, day, unit_id, False), self.registration(second, day, unit_id, False)]
        ):
            return
        registered_on = on(day)
        year = min(registered_on.year + years_later, TODAY.year)
        appraised_on = min(max(registered_on, date(year, 12, 20)), TODAY)
        years_before, month = sanctioned
        sanctioned_on = min(max(registered_on, date(year - years_before, month, 1)), TODAY)

        def appraisal(cadre_id: str) -> AppraisalRecorded:
            source = self.model.source()
            return AppraisalRecorded(
                cadre_id=cadre_id, effective_on=appraised_on, source=source, year=year, result="excellent"
            )

        def sanction(cadre_id: str) -> DeductionApplied:
            source = self.model.source()
            return DeductionApplied(
                cadre_id=cadre_id,
                effective_on=sanctioned_on,
                source=source,
                kind=kind,  # type: ignore[arg-type]
                level="county",
            )

        appraisal_first = [appraisal(first), sanction(first)]
        sanction_first = [sanction(second), appraisal(second)]
        if one_batch:
            batches = [appraisal_first, sanction_first]
        elif interleaved:
            batches = [[appraisal_first[0]], [sanction_first[0]], [appraisal_first[1]], [sanction_first[1]]]
        else:
            batches = [[event] for event in (*appraisal_first, *sanction_first)]
        if not all([self.accepted(batch) for batch in batches]):
            note("twins: a posting was refused")
            return
        head = self.model.head
        naive = Model(self.driver.ledger.records(after=0, limit=10_000))
        read_days = {TODAY, appraised_on, sanctioned_on, min(date(year, 12, 31), TODAY)}
        for as_of in sorted(read_days):
            where = f"twins {first}, {second} ({kind} on {sanctioned_on}, excellent {year}) as of {as_of}"
            one, other = (self.driver.standing(cadre_id, as_of, head) for cadre_id in (first, second))
            assert one is not None and other is not None, where
            assert (one.total, one.components) == (other.total, other.components), where
            expected = naive.cadres(as_of, head)
            assert one.total == expected[first].total == expected[second].total, where
            assert expected[first].results == expected[second].results, where
            histories = [self.driver.history_total(cadre_id, as_of, head) for cadre_id in (first, second)]
            assert histories == [one.total, one.total], where
            checks = [self.driver.eligibility(cadre_id, as_of, head) for cadre_id in (first, second)]
            assert checks[0] == checks[1], where
            ranks = {
                cadre_id: rank
                for rank, cadre_id, _total in self.driver.ranking(f"unit:{unit_id}", as_of, head)
            }
            assert ranks[first] == ranks[second] == 1, f"{where}: the excellent counts differ"
        capped = naive.cadres(TODAY, head)[first].results[year] != "excellent"
        note(f"twins: the excellent year is capped: {capped}")

    @precondition(lambda self: self.model.cadres)
    @rule(
        whom=aims,
        awards=st.tuples(st.sampled_from(AWARDS), st.sampled_from(AWARDS)),
        level=st.sampled_from(LEVELS),
        decided_next_year=st.booleans(),
        at=read_points,
    )
    def veto_a_year_between_two_awards_then_reverse_it(
        self,
        whom: tuple[int, int, int],
        awards: tuple[str, str],
        level: str,
        decided_next_year: bool,
        at: tuple[int, int],
    ) -> None:
        """An award of year Y, a veto for Y (decided in Y or early in Y+1), another award of Y, then the
        veto reversed. While the veto is in force every award of Y it bars — posted before or after it,
        earlier ones too — counts 0.00 in standings and history, also read as of the last day of Y before
        a decision of Y+1; after the reversal they count again."""
        self.read_at = at
        cadre_id, day = self.aim(whom)
        cadre = self.model.cadres.get(cadre_id)
        departed_on = min(cadre.departures.values(), default=None) if cadre is not None else None
        last = min(departed_on or TODAY, TODAY)
        if cadre is None or not cadre.registered_on <= day <= last:
            return
        year = day.year
        veto_on = date(year + 1, 1, 10) if decided_next_year and date(year + 1, 1, 10) <= last else day
        records = self.driver.ledger.records(after=0, limit=10_000)
        reversed_ids = {event.target_event_id for _p, event in records if isinstance(event, EntryReversed)}
        in_force = [
            event
            for _position, event in records
            if getattr(event, "cadre_id", None) == cadre_id and event.event_id not in reversed_ids
        ]
        if any(isinstance(event, VetoApplied) and event.year == year for event in in_force):
            note("veto: the year already has one")
            return
        read_days = sorted({TODAY, min(date(year, 12, 31), TODAY)})

        def totals() -> dict[date, Decimal]:
            head = self.model.head
            found = {}
            for as_of in read_days:
                standing = self.driver.standing(cadre_id, as_of, head)
                assert standing is not None
                assert self.driver.history_total(cadre_id, as_of, head) == standing.total
                found[as_of] = standing.total
            return found

        def merit(award: str) -> MeritAwarded:
            source = self.model.source()
            return MeritAwarded(
                cadre_id=cadre_id,
                effective_on=day,
                source=source,
                award=award,  # type: ignore[arg-type]
                level=level,  # type: ignore[arg-type]
            )

        before = totals()
        award_before = merit(awards[0])
        veto = VetoApplied(
            cadre_id=cadre_id, effective_on=veto_on, source=self.model.source(), year=year, reason="一票否决"
        )
        award_after = merit(awards[1])
        if not (self.accepted([award_before]) and self.accepted([veto]) and self.accepted([award_after])):
            note("veto: a posting was refused")
            return
        recorded = {event.event_id: event for _p, event in self.driver.ledger.records(after=0, limit=10_000)}
        veto_id, *award_ids = (self.model.log[index].event_id for index in (-2, -3, -1))
        recorded_veto = recorded[veto_id]
        assert isinstance(recorded_veto, VetoApplied)
        barred = set(getattr(recorded_veto, "barred_awards", None) or ())
        new_awards = [
            event for event_id in award_ids if isinstance(event := recorded[event_id], MeritAwarded)
        ]
        earlier_barred = [
            event
            for event in in_force
            if isinstance(event, MeritAwarded) and event.effective_on.year == year and event.award in barred
        ]
        vetoed = totals()
        for as_of in read_days:
            zeroed = sum((_points(e) for e in earlier_barred if e.effective_on <= as_of), Decimal("0.00"))
            new = sum(
                (_points(e) for e in new_awards if e.award not in barred and e.effective_on <= as_of),
                Decimal("0.00"),
            )
            own = _points(recorded_veto) if veto_on <= as_of else Decimal("0.00")
            assert vetoed[as_of] == before[as_of] - zeroed + new + own, (
                f"{cadre_id} as of {as_of}, veto for {year} decided on {veto_on} barring {sorted(barred)}"
            )
        note(f"veto: bars an award posted around it: {any(e.award in barred for e in new_awards)}")

        reversal = EntryReversed(
            cadre_id=cadre_id,
            effective_on=veto_on,
            source=self.model.source(),
            target_event_id=veto_id,
            reason="复核",
        )
        if not self.accepted([reversal]):
            note("veto: the reversal was refused")
            return
        after = totals()
        for as_of in read_days:
            new = sum((_points(e) for e in new_awards if e.effective_on <= as_of), Decimal("0.00"))
            assert after[as_of] == before[as_of] + new, f"{cadre_id} as of {as_of} after the veto is reversed"

    # Replays.

    @precondition(lambda self: self.model.batches)
    @rule(choice=st.integers(0, 10**6), at=read_points)
    def replay_a_batch(self, choice: int, at: tuple[int, int]) -> None:
        """The same batch again: every item replayed with its original result, nothing recorded."""
        self.read_at = at
        batch = self.model.batches[choice % len(self.model.batches)]
        head = self.driver.ledger.head()
        posted = self.driver.post(batch)
        assert all(item.replayed for item in posted)
        self.model.record(batch, posted, replay=True)
        assert self.driver.ledger.head() == head

    @precondition(lambda self: self.model.log)
    @rule(choice=st.integers(0, 10**6), at=read_points)
    def replay_with_other_content(self, choice: int, at: tuple[int, int]) -> None:
        """A recorded source key with other content: a conflict, nothing recorded."""
        self.read_at = at
        recorded = self.model.log[choice % len(self.model.log)]
        changed = msgspec.structs.replace(_client_content(recorded.event), note="other content")
        head = self.driver.ledger.head()
        with pytest.raises(Refused) as refused:
            self.driver.post([changed])
        assert (refused.value.kind, refused.value.item) == ("conflict", 0)
        assert self.driver.ledger.head() == head

    @precondition(lambda self: self.model.log)
    @rule(choice=st.integers(0, 10**6), whom=aims, what=scoring, at=read_points)
    def replay_beside_a_new_posting(
        self, choice: int, whom: tuple[int, int, int], what: tuple[Any, ...], at: tuple[int, int]
    ) -> None:
        """A batch of an old event and a new one: the old one replays, the new one is decided as ever."""
        self.read_at = at
        old = _client_content(self.model.log[choice % len(self.model.log)].event)
        self.post([old, self.scoring_event(whom, what)])

    # Read models.

    @rule(at=read_points)
    def rebuild_the_read_models(self, at: tuple[int, int]) -> None:
        self.read_at = at
        assert self.driver.rebuild() == self.model.head

    @rule(at=read_points)
    def restart_the_read_models(self, at: tuple[int, int]) -> None:
        self.read_at = at
        self.driver.restart()

    # Invariants.

    @invariant()
    def the_log_only_grows(self) -> None:
        logged = self.driver.ledger.events(after=0, limit=10_000)
        assert [entry.position for entry in logged] == list(range(1, self.model.head + 1))
        now = [(entry.event.event_id, entry.hash) for entry in logged]
        assert now[: len(self.seen)] == self.seen, "an earlier event or hash changed"
        self.seen = now  # type: ignore[assignment]
        for entry, recorded in zip(logged[self.model.preamble :], self.model.log, strict=True):
            assert (entry.position, entry.hash, entry.event.event_id) == (
                recorded.position,
                recorded.hash,
                recorded.event_id,
            )
            assert _client_content(entry.event) == recorded.event, "the log holds what was posted"

    @invariant()
    def the_chain_verifies(self) -> None:
        assert self.driver.verify() == (True, self.model.head)

    @invariant()
    def read_models_equal_a_naive_replay(self) -> None:
        day, thousandths = self.read_at
        as_of = on(day)
        known_at = self.model.preamble + round(thousandths * len(self.model.log) / 1_000)
        naive = Model(self.driver.ledger.records(after=0, limit=10_000))
        assert naive.server_field_findings() == [], "the ledger records the server fields of the rules"
        expected = naive.cadres(as_of, known_at)
        note(f"cadres known at the read: {len(expected)}")
        for cadre_id in sorted(self.model.cadres):
            standing = self.driver.standing(cadre_id, as_of, known_at)
            cadre = expected.get(cadre_id)
            if cadre is None:
                assert standing is None, f"{cadre_id} is not known as of {as_of} at {known_at}"
                continue
            assert standing == Standing(cadre.total, cadre.components, cadre.unit_id, cadre.status), (
                f"{cadre_id} as of {as_of} known at {known_at}"
            )
            assert self.driver.history_total(cadre_id, as_of, known_at) == cadre.total
            # Eligibility of every cadre through the library; through HTTP (slower) of one a step.
            if self.driver.name == "library" or cadre_id == min(expected):
                assert self.driver.eligibility(cadre_id, as_of, known_at) == naive.eligibility(
                    cadre_id, as_of, known_at
                ), f"eligibility of {cadre_id} as of {as_of} known at {known_at}"
        scopes = ["all", *(f"unit:{unit_id}" for unit_id in naive.units[:1])]
        for scope in scopes:
            got = self.driver.ranking(scope, as_of, known_at)
            want = [
                (entry.rank, entry.cadre_id, expected[entry.cadre_id].total)
                for entry in naive.ranking(scope, as_of, known_at)
            ]
            assert got == want, f"ranking of {scope} as of {as_of} known at {known_at}"


def _sqlite_store() -> tuple[str, Callable[[], None]]:
    folder = tempfile.mkdtemp(prefix="stateful-")
    return f"sqlite:///{Path(folder) / 'ledger.db'}", lambda: shutil.rmtree(folder, ignore_errors=True)


def _postgres_store(base: str) -> Callable[[], tuple[str, Callable[[], None]]]:
    def open_store() -> tuple[str, Callable[[], None]]:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        separator = "&" if "?" in base else "?"
        return f"{base}{separator}schema={schema}", lambda: drop_schema(base, schema)

    return open_store


def run(
    driver_class: type, open_store: Callable[[], tuple[str, Callable[[], None]]], examples: int, steps: int
) -> None:
    machine = type(
        f"{driver_class.name.title()}Machine",
        (LedgerMachine,),
        {"driver_class": driver_class, "open_store": staticmethod(open_store)},
    )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_the_ledger_behaves_as_a_plain_model_through_the_library() -> None:
    run(LibraryDriver, _sqlite_store, examples=40, steps=30)


def test_the_ledger_behaves_as_a_plain_model_through_the_http_api() -> None:
    run(HttpDriver, _sqlite_store, examples=8, steps=25)


@pytest.mark.postgres
def test_the_ledger_behaves_as_a_plain_model_on_postgresql() -> None:
    run(LibraryDriver, _postgres_store(require_postgres()), examples=5, steps=20)
