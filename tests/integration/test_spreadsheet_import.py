"""Spreadsheet import as a clerk meets it: a template, filled in, checked with `--dry-run`, then posted.

The dry run lists every error of a file at once and records nothing (the head, and the row count of every
table, are unchanged on each store); on a file without errors it says what posting would record, and the
post then records exactly that.
"""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from openpyxl import Workbook, load_workbook
from typer.testing import CliRunner

from ledger import Ledger
from ledger.cli import app
from ledger.domain.events import CadreRegistered, MeritAwarded, Source
from tests.conftest import fixed_clock, registration
from tests.support import raw_sql

runner = CliRunner()

REGISTRATION_HEADER = (
    "type,cadre_id,unit_id,effective_on,name,grade,leadership,principal,service_started_on,grade_since,"
    "source_system,source_key"
)
MERIT_HEADER = "type,cadre_id,effective_on,award,level,document,source_system,source_key"


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def table_counts(url: str) -> dict[str, int]:
    """The number of rows of every table of the ledger's database."""
    if url.startswith("sqlite"):
        names = [row[0] for row in raw_sql(url, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    else:
        names = [
            row[0]
            for row in raw_sql(
                url, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            )
        ]
    return {name: raw_sql(url, f'SELECT COUNT(*) FROM "{name}"')[0][0] for name in names}


@pytest.fixture
def seeded(store_url: str) -> str:
    """A ledger with one cadre (C0001, unit U01) and one merit under source hr/m-old."""
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration("C0001", unit_id="U01", key="reg-C0001")])
        ledger.post(
            [
                MeritAwarded(
                    cadre_id="C0001",
                    effective_on=date(2024, 6, 1),
                    source=Source(system="hr", key="m-old"),
                    award="citation",
                    level="county",
                )
            ]
        )
    return store_url


def test_dry_run_of_a_csv_with_errors_lists_every_one_with_row_column_and_rule_and_records_nothing(
    seeded: str, tmp_path: Path
) -> None:
    path = tmp_path / "merits.csv"
    path.write_text(
        MERIT_HEADER + "\n"
        "merit.awarded,C0001,2024-03-01,merit_third_class,county,仙组发〔2024〕17号,hr,m-1\n"  # row 2: fine
        "merit.awarded,C0001,2024/03/01,citation,county,,hr,m-2\n"  # row 3: a date as the clerk typed it
        "merit.awarded,C0001,2024-03-02,medal,county,,hr,m-3\n"  # row 4: an award that is no award
        "merit.awarded,C9999,2024-03-03,citation,county,,hr,m-4\n"  # row 5: a cadre never registered
        "merit.awarded,C0001,2024-03-04,citation,,,hr,m-5\n",  # row 6: the level left empty
        encoding="utf-8",
    )
    before, counts = _head(seeded), table_counts(seeded)
    code, output = run("post", str(path), "--dry-run", "-d", seeded, "-f", "json")
    assert code == 2, output
    document = msgspec.json.decode(output[: output.rindex("}") + 1])
    found = [(e["row"], e["column"], e["cell"], e["rule"]) for e in document["errors"]]
    assert found == [
        (3, "effective_on", "C3", "field_invalid"),
        (4, "award", "D4", "field_invalid"),
        (5, "cadre_id", "B5", "cadre_must_be_registered"),
        (6, "level", "E6", "field_invalid"),
    ], found
    assert "4 errors in 4 rows; nothing was recorded" in output
    assert (_head(seeded), table_counts(seeded)) == (before, counts)


def test_dry_run_of_an_xlsx_with_errors_lists_every_one_and_records_nothing(
    seeded: str, tmp_path: Path
) -> None:
    path = tmp_path / "registrations.xlsx"
    header = REGISTRATION_HEADER.split(",")
    _workbook(
        path,
        header,
        [
            _registration_row("C0002", "一级科员", date(2024, 3, 1), False),  # row 2: fine
            _registration_row("C0003", "科长", date(2024, 3, 1), "maybe"),  # row 3: no such grade or flag
            _registration_row("C0004", "一级科员", date(2030, 1, 1), False),  # row 4: after today
        ],
    )
    before, counts = _head(seeded), table_counts(seeded)
    code, output = run("post", str(path), "--dry-run", "-d", seeded, "-f", "csv")
    assert code == 2, output
    lines = output.splitlines()
    assert lines[0] == "sheet,row,column,cell,rule,message"
    rows = [line.split(",")[:5] for line in lines[1:4]]
    assert rows == [
        ["Sheet", "3", "grade", "F3", "field_invalid"],
        ["Sheet", "3", "principal", "H3", "field_invalid"],
        ["Sheet", "4", "effective_on", "D4", "effective_on_must_not_be_in_future"],
    ], output
    assert (_head(seeded), table_counts(seeded)) == (before, counts)


def test_the_fixed_file_is_what_posting_records_points_and_all(seeded: str, tmp_path: Path) -> None:
    path = tmp_path / "merits.csv"
    path.write_text(
        MERIT_HEADER + "\n"
        "merit.awarded,C0001,2024-03-01,merit_third_class,county,,hr,m-1\n"
        "merit.awarded,C0001,2024-03-02,citation,municipal,,hr,m-2\n",
        encoding="utf-8",
    )
    before, counts = _head(seeded), table_counts(seeded)
    code, output = run("post", str(path), "--dry-run", "-d", seeded, "-f", "json")
    assert code == 0, output
    dry = msgspec.json.decode(output)
    # merit_third_class at county counts 2.00, a citation at municipal level 2.00 (the packaged policy).
    assert [(item["row"], item["outcome"], item["points"]) for item in dry["items"]] == [
        (2, "new", "2.00"),
        (3, "new", "2.00"),
    ]
    assert (_head(seeded), table_counts(seeded)) == (before, counts)
    code, output = run("post", str(path), "-d", seeded, "-f", "json")
    assert code == 0, output
    posted = msgspec.json.decode(output)
    assert [(item["points"], item["replayed"]) for item in posted["results"]] == [
        ("2.00", False),
        ("2.00", False),
    ]
    assert _head(seeded) == before + 2


def test_template_filled_checked_and_posted_round_trip(store_url: str, tmp_path: Path) -> None:
    """The clerk's round trip: `ledger template` → fill the sheet in Excel → `--dry-run` → `post`."""
    with Ledger.open(store_url, clock=fixed_clock):
        pass
    path = tmp_path / "registrations.xlsx"
    code, output = run("template", "cadre.registered", "--format", "xlsx", "-o", str(path))
    assert code == 0, output
    workbook = load_workbook(path)
    sheet = workbook.active
    assert sheet is not None and sheet.title == "cadre.registered"
    header = [cell.value for cell in sheet[1]]
    assert isinstance(sheet.cell(row=2, column=header.index("effective_on") + 1).value, datetime)
    # The clerk overwrites the example row and adds one, leaving `type` empty: the sheet's name says it.
    rows = [
        {"cadre_id": "C0101", "source_key": "r-101", "name": "周八", "document": "仙组发〔2024〕18号"},
        {"type": None, "cadre_id": "C0102", "source_key": "r-102", "name": "吴九", "document": None},
    ]
    example = {name: sheet.cell(row=2, column=index + 1).value for index, name in enumerate(header)}
    for number, changes in enumerate(rows, start=2):
        values = example | changes
        for index, name in enumerate(header):
            sheet.cell(row=number, column=index + 1, value=values[name])
    workbook.save(path)
    before = _head(store_url)
    code, output = run("post", str(path), "--dry-run", "-d", store_url)
    assert code == 0, output
    assert "would record 2" in output and _head(store_url) == before
    code, output = run("post", str(path), "-d", store_url)
    assert code == 0, output
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        recorded = [event for _, event in ledger.records(after=before)]
    assert [(e.cadre_id, e.name, e.document) for e in recorded if isinstance(e, CadreRegistered)] == [
        ("C0101", "周八", "仙组发〔2024〕18号"),
        ("C0102", "吴九", None),
    ]


def test_a_row_that_depends_on_an_earlier_row_of_the_file_passes_the_dry_run(
    seeded: str, tmp_path: Path
) -> None:
    path = tmp_path / "new-cadre.csv"
    path.write_text(
        REGISTRATION_HEADER + ",award,level\n"
        "cadre.registered,C0200,U02,2024-02-01,郑十,一级科员,TRUE,FALSE,2012-07-01,2021-01-01,hr,r-200,,\n"
        "merit.awarded,C0200,,2024-03-01,,,,,,,hr,m-200,merit_third_class,municipal\n",
        encoding="utf-8",
    )
    code, output = run("post", str(path), "--dry-run", "-d", seeded, "-f", "json")
    assert code == 0, output
    # merit_third_class at municipal level counts 4.00.
    assert [(i["outcome"], i["points"]) for i in msgspec.json.decode(output)["items"]] == [
        ("new", "0.00"),
        ("new", "4.00"),
    ]


def test_a_row_whose_source_is_already_recorded_is_a_replay_in_the_dry_run(
    seeded: str, tmp_path: Path
) -> None:
    path = tmp_path / "again.csv"
    path.write_text(
        MERIT_HEADER + "\nmerit.awarded,C0001,2024-06-01,citation,county,,hr,m-old\n", encoding="utf-8"
    )
    code, output = run("post", str(path), "--dry-run", "-d", seeded, "-f", "json")
    assert code == 0, output
    (item,) = msgspec.json.decode(output)["items"]
    assert (item["outcome"], item["points"]) == ("replay", "1.00")


def test_posting_a_spreadsheet_with_decode_errors_lists_them_all_and_records_nothing(
    seeded: str, tmp_path: Path
) -> None:
    path = tmp_path / "merits.csv"
    path.write_text(
        MERIT_HEADER + ",colour\n"
        "merit.awarded,C0001,2024-03-01,citation,county,,hr,m-1,\n"
        "merit.awarded,C0001,yesterday,citation,county,,hr,m-2,\n"
        "merit.awarded,C0001,2024-03-03,citation,planet,,hr,m-3,\n",
        encoding="utf-8",
    )
    before, counts = _head(seeded), table_counts(seeded)
    code, output = run("post", str(path), "-d", seeded, "-f", "csv")
    assert code == 2, output
    rows = [line.split(",")[:4] for line in output.splitlines()[1:4]]
    assert rows == [
        ["1", "colour", "I1", "column_unknown"],
        ["3", "effective_on", "C3", "field_invalid"],
        ["4", "level", "E4", "field_invalid"],
    ], output
    assert (_head(seeded), table_counts(seeded)) == (before, counts)


def test_dry_run_of_jsonl_lists_every_bad_line(seeded: str, tmp_path: Path) -> None:
    good = {
        "type": "merit.awarded",
        "cadre_id": "C0001",
        "effective_on": "2024-03-01",
        "source": {"system": "hr", "key": "j-1"},
        "award": "citation",
        "level": "county",
    }
    lines = [
        good,
        good | {"effective_on": "not a date", "source": {"system": "hr", "key": "j-2"}},
        good | {"cadre_id": "C7777", "source": {"system": "hr", "key": "j-3"}},
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(msgspec.json.encode(line) + b"\n" for line in lines))
    code, output = run("post", str(path), "--dry-run", "-d", seeded, "-f", "json")
    assert code == 2, output
    errors = msgspec.json.decode(output[: output.rindex("}") + 1])["errors"]
    assert [(e["row"], e["column"], e["rule"]) for e in errors] == [
        (2, "effective_on", "field_invalid"),
        (3, "cadre_id", "cadre_must_be_registered"),
    ]


def test_template_of_an_unknown_type_exits_2_listing_the_postable_types() -> None:
    code, output = run("template", "merit.given", "--format", "csv")
    assert code == 2
    assert "merit.awarded" in output and "cadre.registered" in output and "key.created" not in output


def test_csv_template_is_excel_ready_and_reads_back_as_its_example(tmp_path: Path) -> None:
    path = tmp_path / "merit.csv"
    code, output = run("template", "merit.awarded", "--format", "csv", "-o", str(path))
    assert code == 0, output
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
    lines = data[3:].decode().splitlines()
    assert lines[0] == "type,cadre_id,effective_on,award,level,deed,document,note,source_system,source_key"
    assert lines[1].startswith("merit.awarded,C0001,2024-03-01,")
    assert "仙组发〔2024〕17号" in lines[1]


# The library's dry run.


def test_check_decides_every_item_past_the_refused_ones_and_the_log_and_knowledge_stay_as_they_were(
    ledger: Ledger,
) -> None:
    ledger.post([registration("C1", key="reg-C1")])
    head = ledger.head()
    merit = MeritAwarded(
        cadre_id="C1",
        effective_on=date(2024, 3, 1),
        source=Source(system="hr", key="lib-1"),
        award="citation",
        level="county",
    )
    events: list[Any] = [
        msgspec.structs.replace(merit, cadre_id="C404", source=Source(system="hr", key="lib-0")),
        registration("C2", key="lib-reg-C2"),
        msgspec.structs.replace(merit, cadre_id="C2"),
        msgspec.structs.replace(merit, cadre_id="C2", level="national"),  # same source, other content
        msgspec.structs.replace(merit, cadre_id="C2"),  # the same as item 2 again
    ]
    result = ledger.check(events, posted_by="clerk")
    assert result.valid is False and result.position == head
    assert [(i.outcome, i.rule, i.points, i.replay_of) for i in result.items] == [
        ("invalid", "cadre_must_be_registered", None, None),
        ("new", None, Decimal("0.00"), None),
        ("new", None, Decimal("1.00"), None),
        ("conflict", "exists_with_different_content", None, 2),  # reuses item 2's source
        ("replay", None, Decimal("1.00"), 2),
    ]
    assert ledger.head() == head
    # The dry run's registration of C2 was drafted only: a merit for C2 is still refused.
    with pytest.raises(Exception, match="cadre_must_be_registered"):
        ledger.post([msgspec.structs.replace(merit, cadre_id="C2", source=Source(system="hr", key="x"))])


def _head(url: str) -> int:
    with Ledger.open(url, clock=fixed_clock, create=False) as ledger:
        return ledger.head()


def _registration_row(cadre_id: str, grade: str, on: date, principal: object) -> list[Any]:
    """A row of REGISTRATION_HEADER as typed cells: dates as dates, flags as booleans."""
    served = [date(2012, 7, 1), date(2021, 1, 1)]
    return [
        "cadre.registered",
        cadre_id,
        "U01",
        on,
        "王五",
        grade,
        True,
        principal,
        *served,
        "hr",
        f"r-{cadre_id}",
    ]


def _workbook(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Sheet"
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize("width", ["80", "100"])
def test_the_dry_run_table_shows_what_to_change_at_every_width(
    sqlite_url: str, tmp_path: Path, width: str
) -> None:
    # The message is the column that says what to fix: it wraps, it is never the one hidden to fit.
    with Ledger.open(sqlite_url, clock=fixed_clock) as ledger:
        ledger.post([registration("C0001", unit_id="U01", key="reg-C0001")])
    path = tmp_path / "merits.csv"
    path.write_text(
        MERIT_HEADER + "\nmerit.awarded,C0001,2024/03/01,citation,county,,hr,m-2\n", encoding="utf-8"
    )
    result = runner.invoke(app, ["post", str(path), "--dry-run", "-d", sqlite_url], env={"COLUMNS": width})
    assert result.exit_code == 2, result.output
    assert "hidden to fit" not in result.output
    assert "message" in result.output
    table = [line for line in result.output.splitlines() if not line.startswith("error:")]
    assert max(len(line) for line in table) <= int(width), result.output
    assert "2024/03/01" in result.output


def test_a_source_key_twice_in_a_file_names_the_row_that_has_it_first(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Row 2 does not decode, so the events of rows 3 and 4 are the 1st and 2nd decoded: the message must
    # name rows, as the clerk sees them, not the order of the decoded events.
    with Ledger.open(sqlite_url, clock=fixed_clock) as ledger:
        ledger.post([registration("C0001", unit_id="U01", key="reg-C0001")])
    path = tmp_path / "merits.csv"
    path.write_text(
        MERIT_HEADER + "\n"
        "merit.awarded,C0001,2024/03/01,citation,county,,hr,m-0\n"
        "merit.awarded,C0001,2024-03-01,citation,county,,hr,m-1\n"
        "merit.awarded,C0001,2024-03-02,citation,county,,hr,m-1\n",
        encoding="utf-8",
    )
    code, output = run("post", str(path), "--dry-run", "-d", sqlite_url, "-f", "json")
    assert code == 2, output
    document = msgspec.json.decode(output[: output.rindex("}") + 1])
    (conflict,) = [e for e in document["errors"] if e["rule"] == "exists_with_different_content"]
    assert conflict["row"] == 4
    assert conflict["message"].endswith("(first at row 3)"), conflict
