"""The reads as a clerk meets them: tables that fit 80, 100 and 150 columns without splitting an id or a
number, `--columns` and `--wide`, CSV and XLSX that Excel cannot turn into formulas, `--excel`, `--lang zh`,
and history's event column telling events apart.

The ledger, by hand (the illustrative policy, county level): position 1 is the policy; one batch posts
positions 2–10, one more the reversal at 11.
- C0017 欧阳建国: 一等功 5.00 on 2024-02-01, a 嘉奖 1.00 on 2024-03-01 (position 9) reversed on 2024-03-15
  (position 11, -1.00) → 5.00.
- C0018 `=HYPERLINK(…)`: 嘉奖 1.00 on 2024-02-01, 一等功 5.00 on 2024-05-01 → 1.00 in Q1, 6.00 in Q2.
- C0019 王敏: nothing until a 党内警告 -3.00 on 2024-08-01.
- C0020 司马相如长卿: registered on 2024-05-02, new in Q2.
Q1 (2024-03-31): C0017 1, C0018 2, C0019 3. Q2 (2024-06-30): C0018 1 (+1), C0017 2 (-1), C0019 3 (=),
C0020 3 (new).
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from ledger.cli import app
from tests.integration.test_cli_units import events as unit_events

runner = CliRunner()
HOSTILE = '=HYPERLINK("http://x","y")'
NAMES = {"C0017": "欧阳建国", "C0018": HOSTILE, "C0019": "王敏", "C0020": "司马相如长卿"}
WIDTHS = (80, 100, 150)


def run(*args: str, width: int | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": str(width)} if width else None)
    return result.exit_code, result.output


def stdout_of(*args: str) -> bytes:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout_bytes


def registration(cadre_id: str, effective_on: str = "2024-01-02") -> dict:
    return {
        "type": "cadre.registered",
        "cadre_id": cadre_id,
        "effective_on": effective_on,
        "source": {"system": "hr", "key": f"reg-{cadre_id}"},
        "name": NAMES[cadre_id],
        "unit_id": "U1",
        "grade": "四级主任科员",
        "leadership": False,
        "principal": False,
        "service_started_on": "2015-07-01",
        "grade_since": "2021-01-01",
    }


def merit(cadre_id: str, key: str, award: str, effective_on: str) -> dict:
    return {
        "type": "merit.awarded",
        "cadre_id": cadre_id,
        "effective_on": effective_on,
        "source": {"system": "merit-office", "key": key},
        "award": award,
        "level": "county",
    }


def write(path: Path, *events: dict) -> Path:
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    return path


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{tmp_path / 'tables.db'}")
    batch = write(
        tmp_path / "batch.jsonl",
        registration("C0017"),
        registration("C0018"),
        registration("C0019"),
        registration("C0020", "2024-05-02"),
        merit("C0017", "m-1", "merit_first_class", "2024-02-01"),
        merit("C0018", "m-2", "citation", "2024-02-01"),
        merit("C0018", "m-3", "merit_first_class", "2024-05-01"),
        merit("C0017", "m-4", "citation", "2024-03-01"),
        {
            "type": "deduction.applied",
            "cadre_id": "C0019",
            "effective_on": "2024-08-01",
            "source": {"system": "discipline", "key": "d-1"},
            "kind": "party_warning",
            "level": "county",
        },
    )
    code, output = run("post", str(batch), "--format", "json")
    assert code == 0, output
    citation = json.loads(output)["results"][7]
    assert citation["position"] == 9
    reversal = {
        "type": "entry.reversed",
        "cadre_id": "C0017",
        "effective_on": "2024-03-15",
        "source": {"system": "review", "key": "rev-1"},
        "target_event_id": citation["event_id"],
        "reason": "复核: granted twice",
    }
    code, output = run("post", str(write(tmp_path / "reversal.jsonl", reversal)))
    assert code == 0, output
    return tmp_path


def csv_rows(data: bytes) -> list[str]:
    return data.decode("utf-8").splitlines()


# Tables that fit


READS = {
    "rankings": ["rankings", "--scope", "unit:U1", "--period", "2024Q2"],
    "history": ["history", "C0017", "--as-of", "2024-12-31"],
    "eligibility": ["eligibility", "C0017", "--as-of", "2024-06-30"],
    "shortlist": ["eligibility", "--scope", "unit:U1", "--as-of", "2024-06-30"],
    "recalls": ["recalls", "--period", "2024Q2"],
    "boards": ["boards", "--period", "2024Q2"],
    "escalations": ["escalations", "--period", "2024Q2"],
}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("read", sorted(READS))
@pytest.mark.parametrize("wide", [False, True])
def test_every_read_fits_the_width(database: Path, width: int, read: str, wide: bool) -> None:
    code, output = run(*READS[read], *(["--wide"] if wide else []), width=width)
    assert code == 0, output
    lines = output.splitlines()
    assert all(len(line) <= width for line in lines), "\n".join(line for line in lines if len(line) > width)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_ranking_never_splits_an_id_or_a_number(database: Path, width: int, lang: str) -> None:
    code, output = run(*READS["rankings"], "--wide", "--lang", lang, width=width)
    assert code == 0, output
    for cadre_id in NAMES:
        assert cadre_id in output
    for total in ("6.00", "5.00", "0.00"):
        assert total in output
    assert "欧阳建国" in output and "司马相如长卿" in output  # Chinese names whole, not one character a line
    assert all(len(line) <= width for line in output.splitlines())


def test_at_100_columns_the_essential_columns_are_all_shown(database: Path) -> None:
    expected = {
        "rankings": ["rank", "cadre_id", "name", "unit_id", "grade", "total", "movement"],
        "history": ["effective_on", "position", "type", "points", "running_total", "link"],
        "eligibility": ["check", "passed", "detail"],
        "shortlist": ["rank", "cadre_id", "name", "unit_id", "grade", "total"],
    }
    for read, names in expected.items():
        code, output = run(*READS[read], width=100)
        assert code == 0, output
        header = " ".join(output.splitlines()[1:5]).replace("_ ", "_")  # a header may break after `_`
        for name in names:
            assert name.replace("_", "") in header.replace("_", "").replace("┃", " ").split(), (read, name)
        assert "hidden to fit" not in output, read


def test_a_ranking_table_shows_the_essential_columns_and_movement(database: Path) -> None:
    code, output = run(*READS["rankings"], width=150)
    assert code == 0, output
    header = output.splitlines()[2]
    assert "merit" not in header and "previous_rank" not in header
    rows = {line.split("│")[2].strip(): line for line in output.splitlines() if line.startswith("│")}
    assert [cell.strip() for cell in rows["C0018"].split("│")[1:-1]] == [
        "1",
        "C0018",
        HOSTILE,
        "U1",
        "四级主任科员",
        "6.00",
        "+1",
    ]
    assert rows["C0017"].split("│")[-2].strip() == "-1"
    assert rows["C0019"].split("│")[-2].strip() == "="
    assert rows["C0020"].split("│")[-2].strip() == "new"
    assert rows["C0018"].split("│")[6] == "  6.00 ", "numbers are right-aligned"


def test_wide_shows_every_column(database: Path) -> None:
    code, output = run(*READS["rankings"], "--wide", width=200)
    assert code == 0, output
    header = output.splitlines()[2]
    for name in ("tenure", "merit", "deductions", "appraisal", "evaluation", "recall", "previous_rank"):
        assert name in header


def test_columns_choose_the_columns_and_their_order(database: Path) -> None:
    code, output = run(*READS["rankings"], "--columns", "cadre_id,total", width=100)
    assert code == 0, output
    assert [line.split("│")[1:3] for line in output.splitlines() if "C0018" in line] == [
        [" C0018    ", "  6.00 "]
    ]
    code, output = run(*READS["rankings"], "--columns", "movement, cadre_id", "--format", "csv")
    assert code == 0, output
    assert csv_rows(output.encode())[:3] == ["movement,cadre_id", "'+1,C0018", "'-1,C0017"]


def test_an_unknown_column_exits_2_naming_the_valid_ones(database: Path) -> None:
    code, output = run(*READS["rankings"], "--columns", "rank,totl")
    assert code == 2
    assert "totl" in output
    assert (
        "rank, cadre_id, name, unit_id, grade, total, tenure, merit, deductions, appraisal, evaluation, "
        "recall, previous_rank, movement" in " ".join(output.split())
    )
    assert run(*READS["rankings"], "--columns", "rank", "--wide")[0] == 2
    assert run(*READS["rankings"], "--columns", " , ")[0] == 2


# History's event column


def test_history_tells_events_of_one_batch_apart(database: Path) -> None:
    """Positions 2, 6 and 9 were posted in one batch: UUIDv7 ids of one millisecond share their first 8 hex
    digits, so the column shows the last 8."""
    page = json.loads(stdout_of("history", "C0017", "--as-of", "2024-12-31", "--format", "json"))
    ids = [entry["event_id"] for entry in page["entries"]]
    assert [entry["position"] for entry in page["entries"]] == [2, 6, 9, 11]
    rows = csv_rows(stdout_of("history", "C0017", "--as-of", "2024-12-31", "--format", "csv"))
    shown = [row.split(",")[2] for row in rows[1:]]
    assert len(set(shown)) == 4
    for short, full in zip(shown, ids, strict=True):
        assert len(short) == 8 and full.replace("-", "").endswith(short)
    code, output = run("history", "C0017", "--as-of", "2024-12-31", "--columns", "position,event", width=80)
    assert code == 0 and all(short in output for short in shown)


def test_history_links_a_reversal_by_position(database: Path) -> None:
    rows = csv_rows(stdout_of("history", "C0017", "--as-of", "2024-12-31", "--format", "csv"))
    assert rows[0] == (
        "effective_on,position,event,type,points,counted,running_total,posted_by,source,link,adjustment"
    )
    cells = {row.split(",")[1]: row.split(",") for row in rows[1:]}
    assert cells["9"][3:7] == ["merit.awarded", "1.00", "1.00", "6.00"]
    assert cells["11"][3:7] == ["entry.reversed", "-1.00", "-1.00", "5.00"]
    assert cells["9"][9] == "reversed by #11"
    assert cells["11"][9] == "reverses #9"
    code, output = run("history", "C0017", "--as-of", "2024-12-31", width=100)
    assert code == 0 and "reversed by #11" in output and "reverses #9" in output
    # At 80 the link is the one column that can wrap: at its words, never inside `#11`.
    code, output = run("history", "C0017", "--as-of", "2024-12-31", width=80)
    links = [line.split("│")[-2].strip() for line in output.splitlines() if line.startswith("│")]
    assert links == ["", "", "reversed by", "#11", "reverses #9"]


def test_history_shows_counted_where_it_differs_from_points(database: Path) -> None:
    """A veto of 2024 bars the 表彰 (commendation, 1.50 at county level) dated in 2024: it counts 0.00."""
    veto = {
        "type": "veto.applied",
        "cadre_id": "C0020",
        "effective_on": "2024-09-01",
        "source": {"system": "discipline", "key": "veto-1"},
        "year": 2024,
        "reason": "安全生产事故",
    }
    code, output = run(
        "post", str(write(database / "veto.jsonl", veto, merit("C0020", "m-5", "commendation", "2024-10-01")))
    )
    assert code == 0, output
    code, output = run("history", "C0020", "--as-of", "2024-12-31", width=100)
    assert code == 0, output
    assert "counted" in output.splitlines()[2]
    row = next(line for line in output.splitlines() if "merit.awarded" in line)
    assert [cell.strip() for cell in row.split("│")[4:7]] == ["1.50", "0.00", "0.00"]
    code, output = run("history", "C0017", "--as-of", "2024-12-31", width=100)
    assert "counted" not in output, "every entry of C0017 counts its points"


# Excel-safe CSV


def test_csv_neutralises_a_formula_name_and_keeps_movement_text(database: Path) -> None:
    rows = csv_rows(stdout_of(*READS["rankings"], "--format", "csv"))
    assert rows[0] == (
        "rank,cadre_id,name,unit_id,grade,total,tenure,merit,deductions,appraisal,evaluation,recall,"
        "previous_rank,movement"
    )
    assert rows[1] == (
        """1,C0018,"'=HYPERLINK(""http://x"",""y"")",U1,四级主任科员,6.00,0.00,6.00,0.00,0.00,0.00,0.00,2,'+1"""
    )
    assert rows[2].endswith(",1,'-1") and rows[3].endswith(",3,'=") and rows[4].endswith(",,new")


def test_csv_writes_a_deduction_as_a_number(database: Path) -> None:
    rows = csv_rows(stdout_of("history", "C0019", "--as-of", "2024-12-31", "--format", "csv"))
    assert rows[2].split(",")[3:7] == ["deduction.applied", "-3.00", "-3.00", "-3.00"]


def test_excel_csv_has_a_bom_and_crlf(database: Path) -> None:
    data = stdout_of(*READS["rankings"], "--format", "csv", "--excel")
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.count(b"\r\n") == 5 and data.count(b"\n") == 5  # a header and four cadres
    assert data[3:].decode("utf-8").split("\r\n")[2].startswith("2,C0017,欧阳建国,")


def test_excel_and_output_combinations_are_checked(database: Path) -> None:
    code, output = run(*READS["rankings"], "--format", "xlsx")
    assert code == 2 and "-o FILE" in output
    assert run(*READS["rankings"], "--excel")[0] == 2
    assert run(*READS["rankings"], "-o", str(database / "table.txt"))[0] == 2
    assert not (database / "table.txt").exists()


def test_csv_and_json_can_go_to_a_file(database: Path) -> None:
    target = database / "r.csv"
    code, output = run(*READS["rankings"], "--format", "csv", "--excel", "-o", str(target))
    assert code == 0 and f"wrote 4 rows to {target}" in output
    assert target.read_bytes() == stdout_of(*READS["rankings"], "--format", "csv", "--excel")
    target = database / "r.json"
    assert run(*READS["rankings"], "--format", "json", "-o", str(target))[0] == 0
    assert target.read_bytes() == stdout_of(*READS["rankings"], "--format", "json")


def test_json_ignores_the_table_options(database: Path) -> None:
    plain = stdout_of(*READS["rankings"], "--format", "json")
    assert stdout_of(*READS["rankings"], "--format", "json", "--lang", "zh", "--columns", "rank") == plain
    assert json.loads(plain)["entries"][0]["name"] == HOSTILE  # JSON carries the name as recorded


# --lang zh


def test_chinese_headers_in_table_and_csv(database: Path) -> None:
    code, output = run(*READS["rankings"], "--lang", "zh", width=100)
    assert code == 0, output
    assert output.startswith("unit:U1 排名：截至 2024-06-30（上期 2024-03-31）")
    for header in ("名次", "干部编号", "姓名", "单位", "职级", "积分", "名次变化"):
        assert header in output
    assert "C0018" in output and "new" in output  # values stay as recorded
    rows = csv_rows(
        stdout_of(*READS["rankings"], "--format", "csv", "--lang", "zh", "--columns", "rank,cadre_id")
    )
    assert rows[:2] == ["名次,干部编号", "1,C0018"]


# XLSX


def workbook(path: Path):  # type: ignore[no-untyped-def]
    return load_workbook(path)


def test_rankings_as_xlsx_have_typed_cells_a_title_and_a_frozen_header(database: Path) -> None:
    target = database / "rankings.xlsx"
    code, output = run(*READS["rankings"], "--format", "xlsx", "-o", str(target))
    assert code == 0, output
    book = workbook(target)
    assert book.sheetnames == ["rankings 2024-06-30"]
    sheet = book.active
    assert sheet["A1"].value == "unit:U1 as of 2024-06-30 (previous 2024-03-31), known at 11, by total"
    assert sheet.freeze_panes == "A3"
    assert [cell.value for cell in sheet[2]][:6] == ["rank", "cadre_id", "name", "unit_id", "grade", "total"]
    rank, cadre, name, _, _, total = sheet[3][:6]
    assert (rank.value, rank.data_type) == (1, "n")
    assert (cadre.value, cadre.data_type) == ("C0018", "s")
    assert (name.value, name.data_type, name.quotePrefix) == (HOSTILE, "s", True)  # a name, not a formula
    assert (total.value, total.data_type, total.number_format) == (6, "n", "0.00")
    movements = [sheet.cell(row=row, column=14) for row in range(3, 7)]
    assert [(cell.value, cell.data_type) for cell in movements] == [
        ("+1", "s"),
        ("-1", "s"),
        ("=", "s"),
        ("new", "s"),
    ]
    previous = [sheet.cell(row=row, column=13).value for row in range(3, 7)]
    assert previous == [2, 1, 3, None]
    xml = zipfile.ZipFile(io.BytesIO(target.read_bytes())).read("xl/worksheets/sheet1.xml")
    assert b"<f>" not in xml


def test_history_as_xlsx_has_dates_and_points(database: Path) -> None:
    target = database / "history.xlsx"
    assert run("history", "C0019", "--as-of", "2024-12-31", "-f", "xlsx", "-o", str(target))[0] == 0
    sheet = workbook(target)["history C0019"]
    assert sheet["A1"].value == "C0019: total -3.00 as of 2024-12-31, known at position 11"
    on, position, _, kind, points = sheet[4][:5]
    assert (on.value, on.number_format) == (datetime(2024, 8, 1), "yyyy-mm-dd")
    assert (position.value, kind.value) == (10, "deduction.applied")
    assert (points.value, points.data_type, points.number_format) == (-3, "n", "0.00")


def test_the_other_reads_write_xlsx_with_chinese_headers(database: Path) -> None:
    expected = {
        "eligibility": (
            "C0017：截至 2024-06-30 不符合提拔条件，以日志序号 11 时所知",
            ["检查项", "是否通过", "说明"],
        ),
        "shortlist": (
            "unit:U1 提拔人选名单：截至 2024-06-30，以日志序号 11 时所知，符合条件 0 人",
            ["名次", "干部编号", "姓名", "单位", "职级", "积分"],
        ),
        "recalls": (None, ["干部编号", "姓名", "单位", "名次", "参评人数", "积分"]),
        "boards": (None, ["红黑榜", "名次", "干部编号", "姓名", "单位", "积分"]),
        "escalations": (None, ["干部编号", "姓名", "单位", "连续期数", "梯次", "措施", "措施名称"]),
    }
    for read, (title, headers) in expected.items():
        target = database / f"{read}.xlsx"
        code, output = run(*READS[read], "--lang", "zh", "--format", "xlsx", "-o", str(target))
        assert code == 0, (read, output)
        sheet = workbook(target).worksheets[0]
        assert [cell.value for cell in sheet[2]] == headers, read
        assert sheet.freeze_panes == "A3"
        assert "以日志序号 11 时所知" in sheet["A1"].value
        if title:
            assert sheet["A1"].value == title


def test_eligibility_checks_as_xlsx_are_text(database: Path) -> None:
    target = database / "checks.xlsx"
    assert run(*READS["eligibility"], "-f", "xlsx", "-o", str(target))[0] == 0
    sheet = workbook(target)["eligibility C0017"]
    assert [cell.value for cell in sheet["A"]][2:] == [
        "status",
        "years_in_grade",
        "appraisal",
        "gates",
        "recall",
        "investigation",
        "veto",
        "standing",
    ]
    assert sheet["B5"].value == "NO"  # no appraisal is recorded


# Units


@pytest.fixture
def units(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{tmp_path / 'units.db'}")
    code, output = run("post", str(write(tmp_path / "units.jsonl", *unit_events())))
    assert code == 0, output
    return tmp_path


@pytest.mark.parametrize("width", WIDTHS)
def test_unit_reads_fit_the_width(units: Path, width: int) -> None:
    for read in (
        ["units", "rankings", "-p", "2024Q1"],
        ["units", "escalations", "-p", "2024Q1"],
        ["units", "show", "D4"],
    ):
        code, output = run(*read, width=width)
        assert code == 0, output
        assert all(len(line) <= width for line in output.splitlines()), (read, output)
        assert "D4" in output


def test_unit_rankings_as_xlsx(units: Path) -> None:
    target = units / "units.xlsx"
    assert run("units", "rankings", "-p", "2024Q1", "-f", "xlsx", "-o", str(target))[0] == 0
    sheet = workbook(target)["units 2024Q1"]
    assert [cell.value for cell in sheet[2]] == [
        "rank",
        "unit_id",
        "name",
        "score",
        "ratings",
        "dissatisfied",
        "previous_rank",
        "movement",
        "bottom",
    ]
    rank, unit, name, score, ratings, dissatisfied = sheet[6][:6]
    assert (rank.value, unit.value, name.value) == (4, "D4", None)
    assert (score.value, score.number_format) == (80, "0.00")
    assert (ratings.value, dissatisfied.value) == (20, 3)
    for read in (["units", "escalations", "-p", "2024Q1"], ["units", "show", "D4"]):
        target = units / "other.xlsx"
        assert run(*read, "--lang", "zh", "-f", "xlsx", "-o", str(target))[0] == 0
        assert (
            workbook(target).worksheets[0]["A2"].value == "单位编号"
            if read[1] == "escalations"
            else "考核周期"
        )
