"""Writers that add up: a lost race is re-decided against what the winner appended, a batch that keeps
losing takes the append lock before deciding, and a writer restored from its persisted knowledge decides
exactly as one that folded the whole log.

Expected points are worked out by hand from the illustrative policy: the merit annual cap is 30.00; an
honorary title at national level is 25.00, a commendation at national level 6.00.

Races are made deterministic with a seam around the appending writer's `append` (the database is real):
another ledger on the same store posts just before the append runs, as another process would.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from ledger import Ledger
from ledger.domain.cadre import CadreState
from ledger.domain.errors import InvalidInput, StoreUnavailable
from ledger.domain.events import (
    EventBase,
    InvestigationOpened,
    MeritAwarded,
    PolicyPublished,
    RecallCompleted,
    RecallOrdered,
    Source,
)
from ledger.knowledge import STATE_FORMAT, Knowledge, _digest
from ledger.store import recorders
from ledger.writer import LOST_RACES_MAX
from tests.conftest import fixed_clock, registration, source
from tests.integration import test_rules_scenarios as scenario
from tests.support import raw_sql

YEAR = 2025


def merit(cadre_id: str, award: str, *, on: date = date(YEAR, 3, 1), deed: str | None = None) -> MeritAwarded:
    return MeritAwarded(
        cadre_id=cadre_id, effective_on=on, source=source(), award=award, level="national", deed=deed
    )  # type: ignore[arg-type]


def interfere(ledger: Ledger, before_append: Callable[[int], None]) -> list[int]:
    """Call `before_append(decision)` each time `ledger` has decided a batch and is about to append it
    (outside the append lock for the first `LOST_RACES_MAX` decisions, inside it after); the decisions
    seen. `stop_interfering` takes it away."""
    writer: Any = ledger._writer
    original = writer._plan
    decisions: list[int] = []

    def plan(*args: Any, **kwargs: Any) -> Any:
        planned = original(*args, **kwargs)
        writer._last_plan = planned
        decisions.append(len(decisions) + 1)
        before_append(decisions[-1])
        return planned

    writer._plan = plan
    return decisions


def writer_plan_appended(ledger: Ledger) -> list[Any]:
    """The events of the batch `ledger`'s writer decided last (read in an `interfere` hook)."""
    return list(ledger._writer._last_plan.appended)


def stop_interfering(ledger: Ledger) -> None:
    vars(ledger._writer).pop("_plan", None)


def counting_stream_reads(ledger: Ledger) -> list[str]:
    """The streams `ledger` reads whole from now on (a spy around the real read)."""
    recorder: Any = ledger._recorder
    original = recorder.stream_rows
    streams: list[str] = []

    def stream_rows(stream: str) -> Any:
        streams.append(stream)
        return original(stream)

    recorder.stream_rows = stream_rows
    return streams


def folded_from_the_log(url: str) -> Knowledge:
    """The knowledge of a writer that folds the whole log (no persisted state used)."""
    with Ledger.open(url, clock=fixed_clock) as ledger:
        knowledge = Knowledge(ledger._recorder)
        knowledge._started = True  # skip the restore: fold from position 0
        knowledge.catch_up()
        return knowledge


def encoded(knowledge: Knowledge) -> tuple[int, bytes, bytes, dict[str, int], list[str]]:
    encoder = msgspec.msgpack.Encoder()
    states = {stream: (cadre.version, cadre.state) for stream, cadre in sorted(knowledge.cadres.items())}
    book = [published.version for published in knowledge.book]
    return knowledge.head, knowledge.head_hash, encoder.encode(states), dict(knowledge.versions), book


# Lost races.


def test_a_lost_race_is_decided_again_against_what_the_winner_appended(two: tuple[Ledger, Ledger]) -> None:
    mine, other = two
    mine.post([registration("C1"), merit("C1", "honorary_title")])  # 25.00 of the year's 30.00
    won: list[Decimal] = []
    attempts = interfere(
        mine,
        lambda attempt: (
            won.extend(item.points for item in other.post([merit("C1", "commendation")]).results)
            if attempt == 1
            else None
        ),
    )
    streams = counting_stream_reads(mine)
    result = mine.post([merit("C1", "commendation")])
    # The other writer's commendation took the last 5.00 of the cap; mine, decided again, counts nothing.
    assert won == [Decimal("5.00")]
    assert [item.points for item in result.results] == [Decimal("0.00")]
    assert attempts == [1, 2]
    assert mine._writer.lost_races == 1
    assert streams == []  # the lost race reloaded no stream: it folded the winner's event
    assert encoded(mine._writer.knowledge) == encoded(folded_from_the_log(mine.url))
    assert mine.verify().ok


def test_a_batch_that_keeps_losing_takes_the_append_lock_before_deciding(
    two: tuple[Ledger, Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, other = two
    mine.post([registration("C1"), registration("C2")])
    monkeypatch.setattr(recorders, "WRITE_LOCK_WAIT_SECONDS", 1)
    recorder: Any = other._recorder
    if hasattr(recorder, "lock_table_statements"):  # PostgreSQL: the other writer waits 1 s for the lock
        from psycopg.sql import SQL

        assert "lock_timeout" in recorder.lock_table_statements[0].as_string()
        recorder.lock_table_statements[0] = SQL("SET LOCAL lock_timeout = '1s'")
    outcomes: list[str] = []

    def another_writer_posts(_attempt: int) -> None:
        try:
            other.post([merit("C1", "citation")])  # a cadre of the batch: its decision must be made again
            outcomes.append("appended")
        except StoreUnavailable as refused:
            outcomes.append(refused.cause)

    attempts = interfere(mine, another_writer_posts)
    batch = [merit("C1", "citation") for _ in range(5)]  # 5 × 4.00, within the cap with the other's 8.00
    result = mine.post(batch)
    # Two lost races; then the lock was held while deciding, so the other writer could not get in.
    assert LOST_RACES_MAX == 2
    assert outcomes == ["appended", "appended", "lock_busy"]
    assert attempts == [1, 2, 3]
    # The policy at 1, the registrations at 2 and 3, the other writer's two citations at 4 and 5.
    assert [item.position for item in result.results] == list(range(6, 11))
    assert all(item.points == Decimal("4.00") for item in result.results)
    rows = raw_sql(mine.url, "SELECT {pos} FROM {events} ORDER BY {pos}")
    assert [row[0] for row in rows] == list(range(1, 11))
    assert mine.verify().ok


def test_a_batch_of_other_cadres_appended_meanwhile_leaves_the_decision_standing(
    two: tuple[Ledger, Ledger],
) -> None:
    mine, other = two
    mine.post([registration("C1"), registration("C2"), registration("C3")])
    mine.post([merit("C1", "honorary_title")])  # 25.00 of C1's 30.00
    won: list[int] = []
    decisions = interfere(
        mine,
        lambda decision: (
            won.extend(
                item.position
                for item in other.post([merit("C2", "citation"), merit("C3", "citation")]).results
            )
            if decision == 1
            else None
        ),
    )
    streams = counting_stream_reads(mine)
    result = mine.post([merit("C1", "commendation"), merit("C1", "commendation")])
    # The other writer took positions 6 and 7; my batch, decided once, follows them, capped as decided.
    assert won == [6, 7]
    assert decisions == [1]
    assert mine._writer.lost_races == 0
    assert [(item.position, item.points) for item in result.results] == [
        (8, Decimal("5.00")),
        (9, Decimal("0.00")),
    ]
    assert streams == []
    assert encoded(mine._writer.knowledge) == encoded(folded_from_the_log(mine.url))
    assert mine.verify().ok


def test_a_lost_race_decides_again_only_the_items_of_the_cadres_the_winner_touched(
    two: tuple[Ledger, Ledger],
) -> None:
    mine, other = two
    mine.post([registration("C1"), registration("C2")])
    mine.post([merit("C1", "honorary_title")])  # 25.00 of C1's 30.00
    writer: Any = mine._writer
    decider = writer._decider
    decided: list[str] = []

    def counting(posted_by: str) -> Any:
        decide_one = decider(posted_by)

        def counted(event: Any, *args: Any) -> Any:
            decided.append(event.cadre_id)
            return decide_one(event, *args)

        return counted

    writer._decider = counting
    first: list[Any] = []
    decisions = interfere(
        mine,
        lambda decision: (
            first.extend(r.event for r in writer_plan_appended(mine)),
            other.post([merit("C1", "commendation")]) if decision == 1 else None,
        ),
    )
    batch = [merit("C2", "citation"), merit("C1", "commendation"), merit("C2", "citation")]
    result = mine.post(batch)
    # Decided twice: all three items, then only C1's, against the other writer's commendation (5.00).
    assert decisions == [1, 2]
    assert decided == ["C2", "C1", "C2", "C1"]
    assert [(item.position, item.points) for item in result.results] == [
        (6, Decimal("4.00")),
        (7, Decimal("0.00")),
        (8, Decimal("4.00")),
    ]
    # The C2 items kept the events decided first (their ids), C1's was decided anew.
    assert [item.event_id for item in result.results][0::2] == [first[0].event_id, first[2].event_id]
    assert result.results[1].event_id != first[1].event_id
    assert encoded(mine._writer.knowledge) == encoded(folded_from_the_log(mine.url))
    assert mine.verify().ok


def test_a_source_key_of_the_batch_recorded_meanwhile_makes_it_a_replay(two: tuple[Ledger, Ledger]) -> None:
    mine, other = two
    mine.post([registration("C1"), registration("C2")])
    twin = merit("C2", "citation")
    won: list[int] = []
    decisions = interfere(
        mine,
        lambda decision: (
            won.extend(i.position for i in other.post([twin]).results) if decision == 1 else None
        ),
    )
    result = mine.post([merit("C1", "citation"), twin])
    # The other writer recorded the same submission first: mine, decided again, replays it.
    assert decisions == [1, 2]
    assert [(item.position, item.replayed) for item in result.results] == [(5, False), (won[0], True)]
    assert won == [4]
    assert mine.verify().ok


def test_an_item_refused_mid_batch_leaves_the_knowledge_as_it_was(ledger: Ledger) -> None:
    ledger.post([registration("C1")])
    with pytest.raises(InvalidInput) as refused:
        ledger.post([merit("C1", "honorary_title"), merit("C9", "citation")])  # C9 is not registered
    assert refused.value.item == 1
    # Had the refused batch's 25.00 stayed in the knowledge, this would be capped at 5.00.
    result = ledger.post([merit("C1", "commendation")])
    assert [item.points for item in result.results] == [Decimal("6.00")]
    assert encoded(ledger._writer.knowledge) == encoded(folded_from_the_log(ledger.url))


def test_a_policy_refused_with_its_batch_leaves_the_book_as_it_was(ledger: Ledger) -> None:
    body = scenario.custom_policy("local-1")
    ledger.load_all()
    before = [published.version for published in ledger._writer.knowledge.book]
    publication = PolicyPublished(
        effective_on=ledger.today(),
        source=Source(system="test", key="local-1"),
        version="local-1",
        effective_from=date(2020, 1, 1),
        body=body,
    )
    with pytest.raises(InvalidInput):
        ledger.post([publication, merit("C9", "citation")])  # C9 is not registered
    assert [published.version for published in ledger._writer.knowledge.book] == before
    # Published on its own it is new: the refused batch left no trace of it.
    assert ledger.post([publication]).results[0].replayed is False
    assert [published.version for published in ledger._writer.knowledge.book] == [*before, "local-1"]


# The persisted knowledge.


def varied_history(ledger: Ledger) -> None:
    """Every kind of state the writer keeps: units, caps by year, deeds, reversals, appraisals,
    evaluations, recalls, investigations, accruals."""
    ledger.post([registration("C1"), registration("C2", unit_id="U2"), registration("C3")])
    deed = merit("C1", "honorary_title", deed="flood-2025")
    posted = ledger.post([deed, merit("C1", "citation", on=date(2024, 5, 1)), merit("C2", "commendation")])
    ledger.post(
        [
            scenario.reversal("C2", posted.results[2].event_id, date(2025, 6, 1)),
            scenario.appraisal("C1", 2024, date(2025, 1, 20)),
            scenario.evaluation("C3", "2025Q1", date(2025, 4, 10)),
            RecallOrdered(
                cadre_id="C3", effective_on=date(2025, 5, 1), source=source(), period="2025Q1", reason="末位"
            ),
            InvestigationOpened(
                cadre_id="C2", effective_on=date(2025, 7, 1), source=source(), reference="J-7"
            ),
            scenario.accrual("C1", "2025Q1", date(2025, 3, 31)),
        ]
    )


def test_a_writer_restored_from_its_persisted_knowledge_decides_as_one_that_folded_the_log(
    store_url: str,
) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        varied_history(ledger)
        assert ledger.keep_writer_state()
        kept_at = ledger.head()
        # A tail the persisted knowledge does not hold: folded after the restore.
        ledger.post(
            [
                RecallCompleted(
                    cadre_id="C3", effective_on=date(2025, 8, 1), source=source(), outcome="passed"
                ),
                merit("C1", "commendation", deed="flood-2025"),
            ]
        )
    with Ledger.open(store_url, clock=fixed_clock) as restored:
        streams = counting_stream_reads(restored)
        restored.load_all()
        knowledge = restored._writer.knowledge
        assert knowledge._kept_at == kept_at  # restored, not folded from the start
        assert [stream for stream in streams if stream != "$policy"] == []
        assert encoded(knowledge) == encoded(folded_from_the_log(store_url))
        # Decisions that read the restored knowledge, by hand: C1 has 25.00 + 0.00 (the deed counted
        # once) of 2025's cap, so a commendation counts 5.00; C2's commendation was reversed, so 6.00.
        result = restored.post([merit("C1", "commendation"), merit("C2", "commendation")])
        assert [item.points for item in result.results] == [Decimal("5.00"), Decimal("6.00")]
        with pytest.raises(InvalidInput) as refused:  # one evaluation per cadre and period
            restored.post([scenario.evaluation("C3", "2025Q1", date(2025, 4, 11), "90")])
        assert refused.value.rule == "evaluation_already_recorded"


def _kept(url: str) -> tuple[int, bytes, str, bytes, bytes]:
    with Ledger.open(url, clock=fixed_clock) as ledger:
        kept = ledger._recorder.writer_state()
    assert kept is not None
    return kept


def _replace_kept(url: str, **columns: Any) -> None:
    for name, value in columns.items():
        raw_sql(url, f"UPDATE ledger_writer_state SET {name} = ?", (value,))


def _forged(blob: bytes, change: Callable[[dict[str, tuple[int, CadreState]]], None]) -> bytes:
    from ledger.knowledge import _DECODER, _ENCODER, _Persisted

    persisted = _DECODER.decode(blob)
    change(persisted.cadres)
    return _ENCODER.encode(_Persisted(persisted.cadres, persisted.versions, persisted.units))


def _zero_c1_merits(cadres: dict[str, tuple[int, CadreState]]) -> None:
    cadres["C1"][1].merits_by_year[YEAR] = Decimal("0.00")


@pytest.mark.parametrize(
    "damage",
    ["one_byte", "truncated", "other_format", "hash_not_in_log", "ahead_of_the_log"],
)
def test_a_damaged_or_stale_persisted_knowledge_is_not_used(
    store_url: str, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        varied_history(ledger)
        ledger.keep_writer_state()
    position, kept_hash, format_, _old, blob = _kept(store_url)
    if damage == "one_byte":
        _replace_kept(store_url, state=blob[:100] + bytes([blob[100] ^ 1]) + blob[101:])
    elif damage == "truncated":
        _replace_kept(store_url, state=blob[: len(blob) // 2])
    elif damage == "other_format":
        _replace_kept(store_url, format="writer-state/0:" + format_.split(":", 1)[1])
    elif damage == "hash_not_in_log":  # rebound consistently (digest recomputed) to a log it is not of
        other = hashlib.sha256(b"another log").digest()
        _replace_kept(store_url, hash=other, digest=_digest(position, other, format_, blob))
    else:
        _replace_kept(
            store_url, position=position + 5, digest=_digest(position + 5, kept_hash, format_, blob)
        )
    with (
        caplog.at_level(logging.WARNING, logger="ledger"),
        Ledger.open(store_url, clock=fixed_clock) as again,
    ):
        result = again.post([merit("C1", "commendation")])
        # By hand: 25.00 of 2025's cap is used, so 5.00 — decided from the log, not the damaged state.
        assert [item.points for item in result.results] == [Decimal("5.00")]
        assert again._writer.knowledge._kept_at == 0
    message = next(r for r in caplog.records if "persisted writer state is not used" in r.getMessage())
    expected_level = (
        logging.CRITICAL if damage in ("hash_not_in_log", "ahead_of_the_log") else logging.WARNING
    )
    assert message.levelno == expected_level


def test_a_consistent_forgery_of_the_persisted_knowledge_is_found_by_verify(store_url: str) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        varied_history(ledger)
        ledger.keep_writer_state()
        assert ledger.writer_state_findings() == []
    position, hash_, format_, _old, blob = _kept(store_url)
    forged = _forged(blob, _zero_c1_merits)
    _replace_kept(store_url, state=forged, digest=_digest(position, hash_, format_, forged))
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        findings = ledger.writer_state_findings()
    assert [(f.table, f.row, f.reason) for f in findings] == [
        ("ledger_writer_state", "writer cadre C1", "altered")
    ]


def test_verify_read_models_reports_a_forged_writer_state(sqlite_url: str) -> None:
    from typer.testing import CliRunner

    from ledger.cli import app

    with Ledger.open(sqlite_url, clock=fixed_clock) as ledger:
        varied_history(ledger)
        ledger.keep_writer_state()
    position, hash_, format_, _old, blob = _kept(sqlite_url)
    forged = _forged(blob, _zero_c1_merits)
    _replace_kept(sqlite_url, state=forged, digest=_digest(position, hash_, format_, forged))
    outcome = CliRunner().invoke(app, ["verify", "--read-models", "--database", sqlite_url])
    assert outcome.exit_code == 1
    assert "ledger_writer_state" in outcome.output and "writer cadre C1" in outcome.output


def test_a_kept_state_is_replaced_only_by_a_later_one(store_url: str) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration(f"C{n}") for n in range(1, 8)])  # positions 2 … 8
        recorder = ledger._recorder
        hashes = {position: ledger.hash_at(position) or b"" for position in (3, 5, 7)}
        assert recorder.save_writer_state(5, hashes[5], STATE_FORMAT, b"d", b"s5")
        assert not recorder.save_writer_state(3, hashes[3], STATE_FORMAT, b"d", b"s3")
        assert recorder.save_writer_state(7, hashes[7], STATE_FORMAT, b"d", b"s7")
        assert recorder.writer_state() == (7, hashes[7], STATE_FORMAT, b"d", b"s7")
        # A kept state the log does not hold at its position (another log's) is replaced by an earlier one.
        raw_sql(store_url, "UPDATE ledger_writer_state SET hash = ?", (b"not this log's",))
        assert recorder.save_writer_state(3, hashes[3], STATE_FORMAT, b"d", b"s3")
        assert recorder.writer_state() == (3, hashes[3], STATE_FORMAT, b"d", b"s3")


def test_closing_a_writer_keeps_its_knowledge_once_enough_was_folded(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ledger.writer as writer_module

    monkeypatch.setattr(writer_module, "PERSIST_AT_CLOSE_EVENTS", 3)
    with Ledger.open(sqlite_url, clock=fixed_clock) as ledger:
        ledger.post([registration("C1")])  # the policy and one event: 2 < 3, not kept
    with Ledger.open(sqlite_url, clock=fixed_clock) as ledger:
        assert ledger._recorder.writer_state() is None
        ledger.post([merit("C1", "citation")])  # 3 folded: kept at close
    kept = _kept(sqlite_url)
    assert kept[0] == 3 and kept[2] == STATE_FORMAT


def test_a_copied_state_shares_no_container_with_its_original() -> None:
    import dataclasses

    from ledger.domain.cadre import copied

    state = CadreState("C1", "张三", date(2024, 1, 1), date(2010, 1, 1), True, False)
    copy = copied(state)
    assert copy == state
    for spec in dataclasses.fields(CadreState):
        value = getattr(copy, spec.name)
        if isinstance(value, dict | set):
            assert value is not getattr(state, spec.name), spec.name


# Interleavings: several writers, each post possibly overtaken by others just before it appends.

VALUES = {"citation": Decimal("4.00"), "commendation": Decimal("6.00"), "honorary_title": Decimal("25.00")}
CAP = Decimal("30.00")


def naive_points(url: str) -> tuple[list[int], dict[str, Decimal], dict[str, Decimal]]:
    """The log's positions, each merit's recorded points, and its points recomputed independently: in
    position order, the award's value at national level, capped at what is left of the cadre's 30.00 for
    the year."""
    from ledger.store.mapper import decode_event

    used: dict[tuple[str, int], Decimal] = {}
    expected: dict[str, Decimal] = {}
    recorded: dict[str, Decimal] = {}
    positions = []
    for position, state in raw_sql(url, "SELECT {pos}, state FROM {events} ORDER BY {pos}"):
        positions.append(position)
        event = decode_event(bytes(state))
        if isinstance(event, MeritAwarded):
            key = (event.cadre_id, event.effective_on.year)
            points = min(VALUES[event.award], CAP - used.get(key, Decimal("0.00")))
            used[key] = used.get(key, Decimal("0.00")) + points
            expected[str(event.event_id)] = points
            recorded[str(event.event_id)] = event.points  # type: ignore[assignment]
    return positions, expected, recorded


def test_interleaved_writers_lose_duplicate_and_reorder_nothing_and_cap_as_the_log_orders(
    store_url: str,
) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    awards = st.sampled_from(sorted(VALUES))
    item = st.tuples(st.sampled_from(["C1", "C2"]), awards, st.sampled_from([2024, 2025]), st.integers(0, 5))
    # Each overtaker (a writer, a cadre) posts after the batch was decided and before it is appended: to a
    # cadre of the batch (the decision must be made again) or to another (it stands, at later positions).
    overtaker = st.tuples(st.integers(0, 2), st.sampled_from(["C1", "C2"]))
    post = st.tuples(st.integers(0, 2), st.lists(item, min_size=1, max_size=4), st.lists(overtaker))
    examples = 12 if store_url.startswith("sqlite") else 4
    counter = iter(range(10**9))

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(post, min_size=1, max_size=6))
    def run(schedule: list[tuple[int, list[tuple[str, str, int, int]], list[tuple[int, str]]]]) -> None:
        run_id = next(counter)
        writers = [Ledger.open(store_url, clock=fixed_clock) for _ in range(3)]
        try:
            base = f"r{run_id}"
            writers[0].post([registration(f"{base}C1"), registration(f"{base}C2")])

            def batch(items: list[tuple[str, str, int, int]], tag: str) -> list[EventBase]:
                # `reused` picks one of six keys per writer and step: the same content again replays.
                return [
                    MeritAwarded(
                        cadre_id=f"{base}{cadre}",
                        effective_on=date(year, 3, 1),
                        source=source("m", f"{base}-{tag}-{award}-{cadre}-{year}-{reused}"),
                        award=award,  # type: ignore[arg-type]
                        level="national",
                    )
                    for cadre, award, year, reused in items
                ]

            acknowledged: dict[str, int] = {}
            for step, (who, items, overtakers) in enumerate(schedule):
                pending = list(overtakers)

                def overtake(
                    _attempt: int, pending: list[tuple[int, str]] = pending, step: int = step
                ) -> None:
                    while pending:
                        other, cadre = pending.pop(0)
                        result = writers[other].post(batch([(cadre, "citation", 2025, step)], f"o{other}"))
                        for ack in result.results:
                            acknowledged.setdefault(str(ack.event_id), ack.position)

                interfere(writers[who], overtake)
                try:
                    result = writers[who].post(batch(items, f"w{who}"))
                finally:
                    stop_interfering(writers[who])
                for ack in result.results:
                    assert acknowledged.setdefault(str(ack.event_id), ack.position) == ack.position
            positions, expected, recorded = naive_points(store_url)
            assert positions == list(range(1, len(positions) + 1))  # dense: nothing lost or reordered
            assert recorded == expected  # every merit capped as the log orders it
            for event_id, position in acknowledged.items():
                assert position in positions
                assert event_id in expected
            for writer in writers:
                writer.load_all()
                assert encoded(writer._writer.knowledge) == encoded(folded_from_the_log(store_url))
        finally:
            for writer in writers:
                writer.close()

    run()


def test_apply_changes_only_the_containers_changed_by_names_for_each_type(sqlite_url: str) -> None:
    """A draft copies only what `CHANGED_BY` names for an event's type, sharing the rest with the
    knowledge: `apply` must change nothing else, for every type the small demo city records (every type a
    cadre stream holds, reversals of each kind included)."""
    import copy as copying
    from collections import Counter

    from ledger.demo import run_demo
    from ledger.domain.cadre import CHANGED_BY, apply, copied, register, sharing
    from ledger.domain.events import CadreEvent, CadreRegistered

    with Ledger.open(sqlite_url, clock=fixed_clock) as ledger:
        run_demo(ledger, seed=3, scale="small", today=date(2025, 12, 15))
        states: dict[str, CadreState] = {}
        seen: Counter[str] = Counter()
        after = 0
        while batch := ledger.records(after=after, limit=5_000):
            for position, event in batch:
                after = position
                if isinstance(event, CadreRegistered):
                    states[event.cadre_id] = register(event)
                    continue
                if not isinstance(event, CadreEvent) or event.cadre_id not in states:
                    continue
                state = states[event.cadre_id]
                before = copying.deepcopy(state)
                twin = sharing(state, CHANGED_BY.get(type(event), ()))
                apply(twin, event)
                assert state == before, f"apply of {type(event).__name__} changed a shared container"
                whole = copied(state)
                apply(whole, event)
                assert twin == whole
                states[event.cadre_id] = twin
                seen[type(event).__name__] += 1
    assert {
        "MeritAwarded",
        "EvaluationRecorded",
        "EntryReversed",
        "TenureAccrued",
        "CadreTransferred",
    } <= set(seen), seen
