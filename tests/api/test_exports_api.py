"""Downloads (`/v1/exports/…`): each read as the file the CLI would write, for the console's download link.

Goal: a download is the JSON view's entries in a workbook or an Excel-ready CSV, with the JSON route's
roles and parameter checks, named after the view and never cached. Method: a small ledger (the API
fixtures' three cadres, and a fourth named like a formula, posted after position 17), read back with
openpyxl and the csv module and compared with the JSON route's answer and with values worked out by hand.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from ledger.api import exports
from ledger.api.problems import PROBLEM_MEDIA_TYPE
from ledger.cli import app as cli
from ledger.domain.events import MeritAwarded, Source
from tests.api.conftest import HR, Api, open_api
from tests.conftest import registration

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"
FORMULA_NAME = '=HYPERLINK("x")'
BEFORE_C4 = 17  # the log's head before the formula-named cadre was registered

# Every download with a request it answers (the parameters the JSON route would take).
DOWNLOADS: list[tuple[str, dict[str, str]]] = [
    ("/v1/exports/rankings", {"scope": "unit:U1"}),
    ("/v1/exports/eligibility", {}),
    ("/v1/exports/recalls", {"period": "2025Q3"}),
    ("/v1/exports/boards", {"period": "2025Q3"}),
    ("/v1/exports/escalations", {"period": "2025Q3"}),
    ("/v1/exports/cadres/C1/history", {}),
    ("/v1/exports/cadres/C1/eligibility", {}),
    ("/v1/exports/units/rankings", {"period": "2025Q3"}),
    ("/v1/exports/units/escalations", {"period": "2025Q3"}),
    ("/v1/exports/units/U1", {}),
]


@pytest.fixture(scope="module")
def ledger_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with open_api(tmp_path_factory.mktemp("exports")) as api:
        assert api.ledger.head() == BEFORE_C4
        named = msgspec.structs.replace(registration("C4", unit_id="U1", key="reg-C4"), name=FORMULA_NAME)
        merit = MeritAwarded(
            cadre_id="C4",
            effective_on=date(2025, 3, 1),
            source=Source(system=HR, key="merit-C4"),
            award="merit_third_class",
            level="county",
        )
        api.ledger.post([named, merit], posted_by="seed")
        yield api


def download(api: Api, path: str, who: str = "reader", **params: str) -> Any:
    response = api.get(path, who, **params)
    assert response.status_code == 200, response.text
    return response


def cells(data: bytes) -> list[list[Any]]:
    """The first worksheet's values, row by row (row 1 the title, row 2 the header)."""
    sheet = load_workbook(io.BytesIO(data)).worksheets[0]
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


def test_a_workbook_holds_the_json_views_entries_as_numbers(ledger_api: Api) -> None:
    json_view = ledger_api.get("/v1/rankings", "reader", scope="unit:U1").json()
    response = download(ledger_api, "/v1/exports/rankings", format="xlsx", scope="unit:U1")
    assert response.headers["content-type"] == XLSX
    workbook = load_workbook(io.BytesIO(response.content))
    sheet = workbook.worksheets[0]
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[0][0] == "unit:U1 as of 2025-12-15 (previous 2025-09-30), known at 19, by total"
    assert rows[1][:6] == ["rank", "cadre_id", "name", "unit_id", "grade", "total"]
    # By hand: C1 a county citation (1.00) and an excellent appraisal (5.00); C2 a citation and a
    # competent appraisal (2.00); C4 a county third-class merit (2.00) only.
    assert [row[:6] for row in rows[2:]] == [
        [1, "C1", "张三", "U1", "一级科员", Decimal("6.00")],
        [2, "C2", "张三", "U1", "一级科员", Decimal("3.00")],
        [3, "C4", FORMULA_NAME, "U1", "一级科员", Decimal("2.00")],
    ]
    assert [[row[0], row[1], row[5]] for row in rows[2:]] == [
        [entry["rank"], entry["cadre_id"], Decimal(entry["total"])] for entry in json_view["entries"]
    ]
    total = sheet.cell(row=3, column=6)
    assert total.data_type == "n" and total.number_format == "0.00"
    # The formula-named cadre stays text.
    name = sheet.cell(row=5, column=3)
    assert name.data_type == "s" and name.value == FORMULA_NAME


def test_a_csv_is_for_excel_with_formulas_neutralised(ledger_api: Api) -> None:
    response = download(ledger_api, "/v1/exports/rankings", format="csv", scope="unit:U1")
    assert response.headers["content-type"] == CSV
    assert response.content.startswith(b"\xef\xbb\xbfrank,cadre_id,name,")
    text = response.content.decode("utf-8-sig")
    lines = text.split("\r\n")
    assert lines[-1] == "" and "\n" not in text.replace("\r\n", "")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[3][:6] == ["3", "C4", "'" + FORMULA_NAME, "U1", "一级科员", "2.00"]
    # Movement is text, and `=` (unmoved since 2025-09-30) would start a formula.
    assert rows[3][-2:] == ["3", "'="]


def test_lang_zh_gives_chinese_headers_and_title(ledger_api: Api) -> None:
    response = download(ledger_api, "/v1/exports/rankings", format="xlsx", lang="zh", scope="unit:U1")
    rows = cells(response.content)
    assert rows[0][0] == "unit:U1 排名：截至 2025-12-15（上期 2025-09-30），以日志序号 19 时所知，按总积分"
    assert rows[1][:6] == ["名次", "干部编号", "姓名", "单位", "职级", "积分"]
    text = download(ledger_api, "/v1/exports/boards", format="csv", lang="zh", period="2025Q3").text
    assert text.removeprefix("\ufeff").startswith("红黑榜,名次,干部编号,姓名,单位,积分\r\n")


def test_known_at_replays_the_earlier_view(ledger_api: Api) -> None:
    earlier = cells(
        download(ledger_api, "/v1/exports/rankings", scope="unit:U1", known_at=str(BEFORE_C4)).content
    )
    assert earlier[0][0].endswith("known at 17, by total")
    assert [row[1] for row in earlier[2:]] == ["C1", "C2"]
    now = cells(download(ledger_api, "/v1/exports/rankings", scope="unit:U1").content)
    assert [row[1] for row in now[2:]] == ["C1", "C2", "C4"]


def test_a_download_is_an_attachment_named_after_the_view_and_never_cached(ledger_api: Api) -> None:
    response = download(ledger_api, "/v1/exports/rankings", scope="unit:U1", period="2025Q3")
    assert response.headers["content-disposition"] == 'attachment; filename="rankings-unit-U1-2025Q3.xlsx"'
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    history = download(ledger_api, "/v1/exports/cadres/C1/history", format="csv", as_of="2025-06-30")
    assert history.headers["content-disposition"] == 'attachment; filename="history-C1-2025-06-30.csv"'
    each = download(ledger_api, "/v1/exports/recalls", format="csv", period="2025Q3")
    assert each.headers["content-disposition"] == 'attachment; filename="recalls-each-unit-2025Q3.csv"'


def test_a_chinese_name_gets_an_rfc_5987_filename_beside_an_ascii_one(ledger_api: Api) -> None:
    response = download(ledger_api, "/v1/exports/rankings", scope="grade:一级科员", as_of="2025-12-01")
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"rankings-grade-_-2025-12-01.xlsx\"; filename*=UTF-8''rankings-grade-"
        "%E4%B8%80%E7%BA%A7%E7%A7%91%E5%91%98-2025-12-01.xlsx"
    )


def test_a_name_cannot_break_out_of_the_header() -> None:
    assert exports.attachment('rankings-grade-a"; x=\\y/z', "csv") == (
        "attachment; filename=\"rankings-grade-a_x_y_z.csv\"; filename*=UTF-8''rankings-grade-a_x%3D_y_z.csv"
    )


@pytest.mark.parametrize(("path", "params"), DOWNLOADS, ids=[path for path, _ in DOWNLOADS])
@pytest.mark.parametrize("file_format", ["xlsx", "csv"])
def test_every_download_answers_a_reader_with_a_file(
    ledger_api: Api, path: str, params: dict[str, str], file_format: str
) -> None:
    response = download(ledger_api, path, format=file_format, **params)
    assert response.headers["content-type"] == (XLSX if file_format == "xlsx" else CSV)
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    assert response.headers["content-disposition"].split(";")[1].endswith(f'.{file_format}"')
    assert response.headers["cache-control"] == "no-store"
    if file_format == "xlsx":
        assert len(cells(response.content)) >= 2  # the title and the header at least
    else:
        assert response.content.startswith(b"\xef\xbb\xbf")


@pytest.mark.parametrize(("path", "params"), DOWNLOADS, ids=[path for path, _ in DOWNLOADS])
def test_a_download_needs_a_key_that_may_read(ledger_api: Api, path: str, params: dict[str, str]) -> None:
    missing = ledger_api.get(path, "none", **params)
    assert missing.status_code == 401
    assert missing.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert ledger_api.get(path, "poster", **params).status_code == 403
    assert ledger_api.get(path, "auditor", **params).status_code == 200


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/exports/boards", {"period": "2025Q5"}, "period"),
        ("/v1/exports/rankings", {"period": "2025-13"}, "period"),
        ("/v1/exports/rankings", {"format": "pdf"}, "format"),
        ("/v1/exports/rankings", {"lang": "fr"}, "lang"),
        ("/v1/exports/cadres/C1/history", {"known_at": "yesterday"}, "known_at"),
    ],
)
def test_a_bad_parameter_is_a_422_problem(
    ledger_api: Api, path: str, params: dict[str, str], field: str
) -> None:
    response = ledger_api.get(path, "reader", **params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["field"] == field


def test_an_unknown_cadre_is_a_404_problem(ledger_api: Api) -> None:
    response = ledger_api.get("/v1/exports/cadres/C999/history", "reader")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE


def test_a_view_larger_than_a_download_holds_is_refused_not_cut_short(
    ledger_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "EXPORT_ROWS_MAX", 2)
    response = ledger_api.get("/v1/exports/rankings", "reader", scope="unit:U1")
    assert response.status_code == 422
    problem = response.json()
    assert (problem["rule"], problem["field"]) == ("export_rows_max_exceeded", "scope")
    assert problem["detail"] == (
        "the ranking of unit:U1 holds more than 2 rows, the most a download holds: narrow the scope"
    )
    # Two rows fit.
    assert ledger_api.get("/v1/exports/rankings", "reader", scope="unit:U2").status_code == 200


def test_the_csv_is_the_clis_excel_csv_byte_for_byte(ledger_api: Api, tmp_path: Path) -> None:
    served = download(ledger_api, "/v1/exports/rankings", format="csv", lang="zh", scope="unit:U1")
    printed = CliRunner().invoke(
        cli,
        ["rankings", "-s", "unit:U1", "-f", "csv", "--excel", "--lang", "zh", "--database", ledger_api.url],
    )
    assert printed.exit_code == 0, printed.output
    assert served.content == printed.stdout_bytes


def test_the_document_offers_a_binary_workbook_or_csv_text_with_the_download_headers(ledger_api: Api) -> None:
    document = ledger_api.client.get("/schema/openapi.json").json()
    operation = document["paths"]["/v1/exports/rankings"]["get"]
    success = operation["responses"]["200"]
    assert {media: value["schema"] for media, value in success["content"].items()} == {
        XLSX: {"type": "string", "format": "binary"},
        "text/csv": {"type": "string"},
    }
    assert "example" not in success["content"][XLSX]
    assert success["content"]["text/csv"]["example"].startswith("\ufeffrank,cadre_id,name,")
    assert set(success["headers"]) == {"Content-Disposition", "Cache-Control"}
    parameters = {parameter["name"] for parameter in operation["parameters"]}
    json_parameters = {p["name"] for p in document["paths"]["/v1/rankings"]["get"]["parameters"]}
    # The JSON route's parameters, without paging, with the file's format and language.
    assert parameters == json_parameters - {"cursor", "limit"} | {"format", "lang"}
