"""The read-model commands as a user meets them: tables for people, JSON for scripts, rebuild equals live."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger.cli import app

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def registration(cadre_id: str, unit_id: str) -> dict:
    return {
        "type": "cadre.registered",
        "cadre_id": cadre_id,
        "effective_on": "2024-01-02",
        "source": {"system": "hr", "key": f"reg-{cadre_id}"},
        "name": f"干部{cadre_id}",
        "unit_id": unit_id,
        "grade": "一级科员",
        "leadership": False,
        "principal": False,
        "service_started_on": "2015-07-01",
        "grade_since": "2021-01-01",
    }


def merit(cadre_id: str, number: int, award: str) -> dict:
    return {
        "type": "merit.awarded",
        "cadre_id": cadre_id,
        "effective_on": "2024-03-01",
        "source": {"system": "merit-office", "key": f"m-{cadre_id}-{number}"},
        "award": award,
        "level": "county",
    }


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    events = [registration(f"C{n}", "U1" if n < 4 else "U2") for n in range(6)]
    events += [
        merit("C1", 1, "merit_first_class"),
        merit("C2", 1, "merit_third_class"),
        merit("C4", 1, "citation"),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text(
        "".join(json.dumps(event, ensure_ascii=False) + "\n" for event in events), encoding="utf-8"
    )
    code, output = run("post", str(path))
    assert code == 0, output
    return tmp_path


def test_rankings_of_a_unit_as_json_follow_the_points(database: Path) -> None:
    code, output = run("rankings", "--scope", "unit:U1", "--period", "2024Q2", "--format", "json")
    assert code == 0, output
    view = json.loads(output)
    assert (view["scope"], view["as_of"], view["previous_as_of"]) == ("unit:U1", "2024-06-30", "2024-03-31")
    assert [entry["cadre_id"] for entry in view["entries"]] == ["C1", "C2", "C0", "C3"]
    assert [entry["rank"] for entry in view["entries"]] == [1, 2, 3, 3]
    assert view["entries"][0]["total"] == "5.00" and view["entries"][0]["components"]["merit"] == "5.00"


def test_rankings_on_the_period_basis_count_only_the_period(database: Path) -> None:
    """`--basis period` for 2024Q3 counts the points dated in the quarter: none of this log's, so every cadre
    of U1 has 0.00 and they share rank 1; the total basis still ranks C1 first with 5.00."""
    code, output = run(
        "rankings", "--scope", "unit:U1", "--period", "2024Q3", "--basis", "period", "--format", "json"
    )
    assert code == 0, output
    view = json.loads(output)
    assert (view["basis"], view["since"]) == ("period", "2024-07-01")
    assert {entry["total"] for entry in view["entries"]} == {"0.00"}
    assert {entry["rank"] for entry in view["entries"]} == {1}
    code, output = run("rankings", "--scope", "unit:U1", "--period", "2024Q3", "--format", "json")
    total = json.loads(output)
    assert (total["basis"], total["since"], total["entries"][0]["total"]) == ("total", None, "5.00")
    code, output = run("rankings", "--scope", "unit:U1", "--period", "2024Q3", "--basis", "gain")
    assert code == 2 and "basis" in output


def test_rankings_print_a_table_a_person_can_read(database: Path) -> None:
    code, output = run("rankings", "--scope", "unit:U1", "--period", "2024Q2")
    assert code == 0
    lines = output.splitlines()
    assert lines[0].startswith("unit:U1 as of 2024-06-30")
    assert any("C1" in line and "5.00" in line for line in lines)
    assert all(len(line) <= 160 for line in lines)


def test_rankings_as_csv_have_a_header_and_one_row_per_cadre(database: Path) -> None:
    code, output = run("rankings", "--period", "2024Q2", "--format", "csv")
    rows = output.strip().splitlines()
    assert code == 0 and rows[0].startswith("rank,cadre_id,name") and len(rows) == 7


def test_eligibility_names_every_check(database: Path) -> None:
    code, output = run("eligibility", "C1", "--as-of", "2024-06-30", "--format", "json")
    assert code == 0, output
    view = json.loads(output)
    assert [check["check"] for check in view["checks"]] == [
        "status",
        "years_in_grade",
        "appraisal",
        "gates",
        "recall",
        "investigation",
        "veto",
        "standing",
    ]
    assert view["eligible"] is False, "no appraisal is recorded"
    code, output = run("eligibility", "--scope", "unit:U1", "--as-of", "2024-06-30", "--format", "json")
    assert code == 0 and json.loads(output)["entries"] == []


def test_boards_recalls_and_escalations_answer(database: Path) -> None:
    for command in (
        ["boards", "--period", "2024Q2"],
        ["recalls", "--period", "2024Q2"],
        ["escalations", "--period", "2024Q2"],
    ):
        code, output = run(*command, "--format", "json")
        assert code == 0, (command, output)
        assert json.loads(output)["period"] == "2024Q2"


def test_unknown_scopes_and_periods_exit_2(database: Path) -> None:
    assert run("rankings", "--scope", "unit:NOPE")[0] == 2
    assert run("rankings", "--scope", "everyone")[0] == 2
    assert run("boards", "--period", "2024Q7")[0] == 2


def test_a_rebuild_gives_the_same_answers(database: Path) -> None:
    before = run("rankings", "--period", "2024Q2", "--format", "json")[1]
    code, output = run("rebuild")
    assert code == 0 and "rebuilt version 2" in output
    assert run("rankings", "--period", "2024Q2", "--format", "json")[1] == before
