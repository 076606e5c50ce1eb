"""Input faults through the shell and the library, on SQLite and PostgreSQL (issue 10, items 7, 8, 13 and
14): a JSONL line that is not UTF-8, a policy nested too deeply to parse, names with a trailing line
break (in a file, or in structs built in Python, which msgspec does not check when they are built), and
forged history cursors. Each is refused — exit 2 with a message naming the line, or InvalidInput naming
the field — and the log in the database itself does not move.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import pytest
from typer.testing import CliRunner

from ledger import Ledger
from ledger.access import KeyStore, Role
from ledger.cli import app
from ledger.domain.errors import InvalidInput
from ledger.domain.events import (
    CadreRegistered,
    InvestigationOpened,
    MeritAwarded,
    RecallOrdered,
    Source,
    TenureAccrued,
)
from ledger.domain.periods import parse_period
from ledger.domain.points import points
from tests.conftest import fixed_clock, registration
from tests.integration.test_cli import MERIT as CLI_MERIT
from tests.integration.test_cli import REGISTRATION
from tests.support import alter_state, raw_sql

runner = CliRunner()

# test_cli's events, without the merit's document (the UTF-8 cases put their bad bytes there).
MERIT = {name: value for name, value in CLI_MERIT.items() if name != "document"}


@pytest.fixture
def database(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An initialized ledger (the illustrative policy published) on each store, as LEDGER_DATABASE_URL."""
    monkeypatch.setenv("LEDGER_DATABASE_URL", store_url)
    code, output = run("init")
    assert code == 0, output
    yield store_url


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"ledger {' '.join(args)} raised instead of exiting") from result.exception
    return result.exit_code, result.output


def stored_log(url: str) -> tuple[int, int]:
    """How many events the database holds and its highest position, read behind the ledger's back."""
    ((count, last),) = raw_sql(url, "SELECT COUNT(*), COALESCE(MAX({pos}), 0) FROM {events}")
    return int(count), int(last)


def line(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode() + b"\n"


# Item 7: a JSONL file that is not UTF-8.

NOT_UTF8 = {
    "a stray byte 0xff": b"\xff",
    "an overlong '/' (C0 AF)": b"\xc0\xaf",
    "an encoded surrogate U+D800": b"\xed\xa0\x80",
    "a code point past U+10FFFF": b"\xf4\x90\x80\x80",
    "a truncated sequence": b"\xe2\x82",
}


@pytest.mark.parametrize("bad", list(NOT_UTF8.values()), ids=list(NOT_UTF8))
def test_post_of_a_line_that_is_not_utf8_exits_2_naming_the_line_and_offset_and_records_nothing(
    database: str, tmp_path: Path, bad: bytes
) -> None:
    second = line(MERIT | {"document": "组通@@号"})
    offset = second.index(b"@@")
    path = tmp_path / "batch.jsonl"
    path.write_bytes(line(REGISTRATION) + second.replace(b"@@", bad))
    before = stored_log(database)
    code, output = run("post", str(path))
    assert code == 2, output
    assert f"line 2 is not UTF-8: invalid byte 0x{bad[0]:02x} at offset {offset} of the line" in output
    assert "[text_must_be_utf8]" in output
    assert stored_log(database) == before


def test_post_of_a_file_with_a_byte_order_mark_exits_2_naming_line_1(database: str, tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + line(REGISTRATION))
    before = stored_log(database)
    code, output = run("post", str(path))
    assert (code, "line 1:" in output) == (2, True), output
    assert stored_log(database) == before


# Item 13: names in a file and in structs built in Python.


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cadre_id": "C1\n"}, "cadre_id"),
        ({"cadre_id": "C1\r\n"}, "cadre_id"),
        ({"unit_id": "U01\n"}, "unit_id"),
        ({"source": {"system": "hr\n", "key": "reg-C1"}}, "source.system"),
        ({"source": {"system": "hr", "key": "reg-C1\n"}}, "source.key"),
        ({"name": "李四\n"}, "name"),
        ({"document": "组通〔2024〕3号\r\n"}, "document"),
    ],
)
def test_post_of_a_name_with_a_line_break_exits_2_naming_the_line_and_field(
    database: str, tmp_path: Path, fields: dict[str, Any], field: str
) -> None:
    path = tmp_path / "names.jsonl"
    path.write_bytes(line(MERIT) + line(REGISTRATION | fields))
    before = stored_log(database)
    code, output = run("post", str(path))
    assert code == 2, output
    assert "line 2" in output and f"field `{field}`" in output, output
    assert stored_log(database) == before


def test_post_with_a_posted_by_that_is_not_a_principal_name_exits_2(database: str, tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_bytes(line(REGISTRATION))
    before = stored_log(database)
    for principal in ("alice\n", "alice bob", ""):
        code, output = run("post", str(path), "--posted-by", principal)
        assert (code, "--posted-by" in output) == (2, True), (principal, output)
    assert stored_log(database) == before
    code, output = run("post", str(path), "--posted-by", "hr-sync@city")
    assert code == 0, output


def _merit(**fields: Any) -> MeritAwarded:
    values: dict[str, Any] = {
        "cadre_id": "C1",
        "effective_on": date(2024, 6, 1),
        "source": Source(system="hr", key="m-lib"),
        "award": "citation",
        "level": "unit",
    } | fields
    return MeritAwarded(**values)


# (a struct built in Python with a bad name, the field named in the refusal)
LIBRARY_CASES = [
    (registration("C1\n"), "cadre_id"),
    (registration("C1 "), "cadre_id"),
    (registration("C2", unit_id="U1\n"), "unit_id"),
    (msgspec.structs.replace(registration("C2"), name="张三\n"), "name"),
    (msgspec.structs.replace(registration("C2"), grade="一级科员\n"), "grade"),
    (_merit(source=Source(system="hr\n", key="k")), "source.system"),
    (_merit(source=Source(system="hr", key="k\n")), "source.key"),
    (_merit(document="文号\r\n"), "document"),
    (_merit(deed="flood\u2028"), "deed"),
    (_merit(cadre_id="C1\n"), "cadre_id"),
    (
        TenureAccrued(
            cadre_id="C1",
            effective_on=date(2025, 3, 31),
            source=Source(system="hr", key="t"),
            period="2025Q1\n",
        ),
        "period",
    ),
    (
        RecallOrdered(
            cadre_id="C1",
            effective_on=date(2025, 3, 1),
            source=Source(system="hr", key="r"),
            period="2025\n",
            reason="bottom",
        ),
        "period",
    ),
    (
        InvestigationOpened(
            cadre_id="C1",
            effective_on=date(2025, 3, 1),
            source=Source(system="hr", key="i"),
            reference="纪-7\n",
        ),
        "reference",
    ),
]


@pytest.mark.parametrize(
    ("event", "field"), LIBRARY_CASES, ids=[f"{type(case[0]).__name__} {case[1]}" for case in LIBRARY_CASES]
)
def test_the_library_refuses_a_struct_whose_name_holds_a_line_break_naming_the_field(
    store_url: str, event: Any, field: str
) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration("C1", key="reg-C1")])
        before = stored_log(store_url)
        with pytest.raises(InvalidInput) as refusal:
            ledger.post([_merit(source=Source(system="hr", key="ok-first")), event])
        assert (refusal.value.item, refusal.value.field) == (1, field), refusal.value
        assert stored_log(store_url) == before


def test_the_library_still_records_the_same_structs_with_clean_names(store_url: str) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        result = ledger.post(
            [
                registration("C1", key="reg-C1"),
                _merit(document="文号", deed="flood"),
                CadreRegistered(
                    cadre_id="C2",
                    effective_on=date(2024, 1, 1),
                    source=Source(system="hr", key="reg-C2"),
                    name="王 五",  # a space inside a name is a name
                    unit_id="U1",
                    grade="一级科员",
                    leadership=False,
                    principal=False,
                    service_started_on=date(2010, 1, 1),
                    grade_since=date(2020, 1, 1),
                ),
            ]
        )
        assert [item.replayed for item in result.results] == [False, False, False]
        assert stored_log(store_url)[0] == 1 + 3  # the illustrative policy and the three


def test_principals_systems_and_tokens_match_whole_strings(store_url: str) -> None:
    with KeyStore.open(store_url) as keys:
        for principal in ("alice\n", "alice\r\n", " alice"):
            with pytest.raises(InvalidInput) as refusal:
                keys.create(principal, Role.reader)
            assert refusal.value.rule == "principal_invalid"
        with pytest.raises(InvalidInput) as refusal:
            keys.create("hr-sync", Role.poster, system="hr\n", event_types=["merit.awarded"])
        assert refusal.value.rule == "system_invalid"
        issued = keys.create("reader", Role.reader)
        assert keys.authenticate(issued.token) is not None
        assert keys.authenticate(issued.token + "\n") is None


def test_periods_and_points_match_whole_strings() -> None:
    for text in ("2025\n", "2025Q3\n", "2025-07\n", "2025-W27\n"):
        with pytest.raises(ValueError):
            parse_period(text)
    with pytest.raises(ValueError):
        points("12.50\n")


# Item 8: policies nested too deeply.

DEEP_POLICIES = {
    "arrays 500 deep": "version = " + "[" * 500 + "]" * 500,
    "inline tables 500 deep": "version = " + "{a = " * 500 + "1" + "}" * 500,
    "a dotted key of 99,000 parts": ".".join(["a"] * 99_000) + " = 1",
}


@pytest.mark.parametrize("text", list(DEEP_POLICIES.values()), ids=list(DEEP_POLICIES))
def test_policy_publish_of_a_policy_nested_too_deeply_exits_2_and_records_nothing(
    database: str, tmp_path: Path, text: str
) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(text, encoding="utf-8")
    before = stored_log(database)
    code, output = run("policy", "publish", str(path))
    assert code == 2, output
    assert "[policy_too_deep]" in output and "field `body`" in output, output
    assert stored_log(database) == before


@pytest.mark.parametrize("text", list(DEEP_POLICIES.values()), ids=list(DEEP_POLICIES))
def test_the_library_refuses_a_policy_nested_too_deeply(store_url: str, text: str) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        before = stored_log(store_url)
        with pytest.raises(InvalidInput) as refusal:
            ledger.publish_policy(text)
        assert (refusal.value.rule, refusal.value.field) == ("policy_too_deep", "body")
        assert stored_log(store_url) == before


# Item 14: history cursors through the library.


def cursor_of(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def test_the_library_refuses_forged_and_foreign_history_cursors(store_url: str) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post(
            [
                registration("C1", key="reg-C1"),
                registration("C2", key="reg-C2"),
                _merit(source=Source(system="hr", key="m1")),
            ]
        )
        first = ledger.history("C1", limit=1, as_of=date(2025, 6, 30))
        assert first.next_cursor == cursor_of(
            ["history", "C1", "2025-06-30", first.position, "2024-01-01", 2]
        )
        for cadre_id, cursor, parameters in (
            ("C1", cursor_of([]), {}),
            ("C1", cursor_of([1, 2]), {}),
            ("C1", cursor_of(["2024-01-01", 2]), {}),
            ("C1", cursor_of(["history", "C1", "2025-06-30", first.position, "2024-01-01", 3]), {}),
            ("C2", first.next_cursor, {}),
            ("C1", first.next_cursor, {"as_of": date(2025, 7, 1)}),
            ("C1", first.next_cursor, {"known_at": first.position - 1}),
        ):
            with pytest.raises(InvalidInput) as refusal:
                ledger.history(cadre_id, cursor=cursor, **parameters)
            assert (refusal.value.rule, refusal.value.field) == ("cursor_invalid", "cursor"), (
                cursor,
                parameters,
            )
        rest = ledger.history("C1", cursor=first.next_cursor)
        assert [entry.type for entry in rest.entries] == ["merit.awarded"]
        assert (rest.as_of, rest.position, rest.next_cursor) == (date(2025, 6, 30), first.position, None)


def test_an_event_recorded_with_a_trailing_line_break_before_this_check_still_reads(store_url: str) -> None:
    """The whole-string rule is for input: msgspec applies the struct patterns to stored events too, so
    they stay as they were, and an event a ledger recorded before (here made by rewriting a stored row)
    still decodes. A log must always read."""
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        position = ledger.post([registration("C1X", key="reg-C1X")]).position
    alter_state(store_url, position, b'"C1X"', b'"C1\\n"')
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        (logged,) = ledger.events(after=position - 1, limit=1)
        assert logged.event.cadre_id == "C1\n"  # type: ignore[attr-defined]
