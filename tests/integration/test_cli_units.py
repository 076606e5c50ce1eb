"""`ledger units …` over a ledger posted from JSONL: four departments rated by 20 enterprises in 2024Q1.

Scores by hand (the illustrative policy: 20 ratings needed, trimmed mean dropping floor(20 × 0.05) = 1 rating
from each end, bottom three, ties broken by fewer dissatisfied votes):
D1 all 95 → 95.00, rank 1; D2 all 85 → 85.00, rank 2 (in the bottom three of four);
D3 and D4 all 80 → 80.00 each, D3 with 1 dissatisfied vote, D4 with 3: D3 rank 3, D4 rank 4.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger.cli import app

runner = CliRunner()
RATERS = [f"E{number:02d}" for number in range(20)]
SCORES = {"D1": ("95", 0), "D2": ("85", 0), "D3": ("80", 1), "D4": ("80", 3)}


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def events() -> list[dict]:
    listed: list[dict] = [
        {
            "type": "cadre.registered",
            "cadre_id": f"C{unit}",
            "effective_on": "2024-01-02",
            "source": {"system": "hr", "key": f"reg-{unit}"},
            "name": f"局长{unit}",
            "unit_id": unit,
            "grade": "一级调研员",
            "leadership": True,
            "principal": True,
            "service_started_on": "2000-07-01",
            "grade_since": "2021-01-01",
        }
        for unit in SCORES
    ]
    listed.append(
        {
            "type": "rating.panel_drawn",
            "effective_on": "2024-03-25",
            "source": {"system": "survey", "key": "panel-2024Q1"},
            "period": "2024Q1",
            "rater_kind": "enterprise",
            "raters": RATERS,
            "method": "sha256-lottery",
            "seed": "2024Q1",
        }
    )
    for unit, (score, dissatisfied) in SCORES.items():
        for number, rater in enumerate(RATERS):
            listed.append(
                {
                    "type": "unit.rated",
                    "effective_on": "2024-04-05",
                    "source": {"system": "survey", "key": f"{unit}-{rater}"},
                    "unit_id": unit,
                    "period": "2024Q1",
                    "rater": {"kind": "enterprise", "id": rater},
                    "score": score,
                    "scores": {"service": score, "efficiency": score, "integrity": score},
                    "verdict": "dissatisfied" if number < dissatisfied else "satisfied",
                }
            )
    return listed


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events()), encoding="utf-8")
    code, output = run("post", str(path))
    assert code == 0, output
    return tmp_path


def test_units_rankings_as_json_break_a_tie_by_fewer_dissatisfied(database: Path) -> None:
    code, output = run("units", "rankings", "--period", "2024Q1", "--format", "json")
    assert code == 0, output
    view = json.loads(output)
    assert [
        (e["unit_id"], e["rank"], e["score"], e["dissatisfied"], e["in_bottom"]) for e in view["entries"]
    ] == [
        ("D1", 1, "95.00", 0, False),
        ("D2", 2, "85.00", 0, True),
        ("D3", 3, "80.00", 1, True),
        ("D4", 4, "80.00", 3, True),
    ]


def test_units_escalations_table_names_each_leader(database: Path) -> None:
    code, output = run("units", "escalations", "--period", "2024Q1")
    assert code == 0, output
    for unit in ("D2", "D3", "D4"):
        assert f"C{unit}" in output
    assert "CD1" not in output and "表态发言+约谈" in output


def test_units_show_as_csv_lists_the_period(database: Path) -> None:
    code, output = run("units", "show", "D4", "--format", "csv")
    assert code == 0, output
    assert output.splitlines() == [
        "period,rank,of,score,ratings,dissatisfied,bottom,streak,step,action",
        "2024Q1,4,4,80.00,20,3,yes,1,1,commitment_speech_and_summons_talk",
    ]


def test_units_read_known_at_a_position_before_the_ratings(database: Path) -> None:
    code, output = run("units", "rankings", "-p", "2024Q1", "--known-at", "5", "-f", "json")
    assert code == 0, output
    assert json.loads(output)["entries"] == []


def test_units_errors_exit_2(database: Path) -> None:
    assert run("units", "rankings", "--period", "2024Q9")[0] == 2
    assert run("units", "show", "NOPE")[0] == 2
