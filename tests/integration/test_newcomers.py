"""What cost a newcomer time (issue 13 §8): a PostgreSQL URL on the plain install, a busy port, the
version, flags shown as `<bool>`, long commands without totals, the demo's clock."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.ledger import Ledger
from tests.conftest import registration

runner = CliRunner()
LEDGER = [sys.executable, "-c", "from ledger.cli import main; main()"]


def _environment(**extra: str) -> dict[str, str]:
    kept = {key: value for key, value in os.environ.items() if not key.startswith("LEDGER_DATABASE")}
    return kept | {"COLUMNS": "120"} | extra


def _without_psycopg(*argv: str) -> subprocess.CompletedProcess[str]:
    """`ledger ARGV` as on the plain install: psycopg hidden from the import system, as if not installed."""
    script = (
        "import sys; sys.modules['psycopg'] = None; sys.modules['psycopg_pool'] = None\n"
        f"sys.argv = ['ledger', *{list(argv)!r}]\n"
        "from ledger.cli import main; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=_environment(), check=False
    )


def test_a_postgresql_url_without_the_extra_says_which_extra_to_install_and_exits_2() -> None:
    ran = _without_psycopg("history", "C1", "-d", "postgresql://postgres@127.0.0.1:5432/test")
    assert ran.returncode == 2, ran.stderr
    assert "pip install 'cadre-ledger[postgres]'" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert len(ran.stderr.strip().splitlines()) <= 2


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield holder.getsockname()[1]


def test_serve_on_a_busy_port_says_so_before_saying_it_serves(tmp_path: Path, busy_port: int) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert runner.invoke(app, ["init", "-d", url]).exit_code == 0
    ran = subprocess.run(
        [*LEDGER, "serve", "-d", url, "--host", "127.0.0.1", "--port", str(busy_port)],
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=60,
        check=False,
    )
    assert ran.returncode == 2, ran.stderr
    assert "serving" not in ran.stderr + ran.stdout
    assert f"127.0.0.1:{busy_port}" in ran.stderr
    assert "PORT=" in ran.stderr


def test_make_run_takes_the_port_from_PORT() -> None:
    root = Path(__file__).parents[2]
    ran = subprocess.run(
        ["make", "-n", "run", "PORT=8123"], cwd=root, capture_output=True, text=True, check=True
    )
    assert "--port 8123" in ran.stdout
    assert "http://127.0.0.1:8123" in ran.stdout
    assert ":8000" not in ran.stdout


def test_version_prints_the_distribution_version() -> None:
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"cadre-ledger {version('cadre-ledger')}"


@pytest.mark.parametrize("command", [["demo"], ["verify"], ["post"], ["keys", "create"], []])
def test_plain_flags_show_no_type_in_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "150"})
    assert result.exit_code == 0
    assert "--help" in result.output
    assert "<bool>" not in result.output


def test_the_demo_says_which_city_once() -> None:
    result = runner.invoke(app, ["demo", "--help"], env={"COLUMNS": "150"})
    assert result.exit_code == 0
    assert "--today" in result.output


def _demo(url: str, today: str) -> list[dict[str, object]]:
    result = runner.invoke(app, ["demo", "-d", url, "--today", today])
    assert result.exit_code == 0, result.output
    assert "city city" not in result.output
    ranking = runner.invoke(app, ["rankings", "-d", url, "--as-of", today, "--format", "json"])
    assert ranking.exit_code == 0, ranking.output
    document = json.loads(ranking.output)
    entries: list[dict[str, object]] = document["entries"]
    assert document["as_of"] == today
    return entries


def test_demo_today_makes_the_city_independent_of_the_clock(tmp_path: Path) -> None:
    first = _demo(f"sqlite:///{tmp_path / 'a.db'}", "2025-06-30")
    second = _demo(f"sqlite:///{tmp_path / 'b.db'}", "2025-06-30")
    assert first == second
    assert first, "the demo ranks nobody"


def test_demo_today_refuses_what_is_not_a_date(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "-d", f"sqlite:///{tmp_path / 'a.db'}", "--today", "2025-13-01"])
    assert result.exit_code == 2
    assert re.search(r"--today: '2025-13-01' is not a date", result.output)
    assert not (tmp_path / "a.db").exists()


def test_demo_today_refuses_a_day_after_today(tmp_path: Path) -> None:
    # Events dated after the real today would be refused as future-dated; say so at once instead.
    result = runner.invoke(app, ["demo", "-d", f"sqlite:///{tmp_path / 'a.db'}", "--today", "2999-01-01"])
    assert result.exit_code == 2
    assert "--today: 2999-01-01 is after today" in result.output


def test_verify_reports_its_progress_page_by_page_up_to_the_head(ledger: Ledger) -> None:
    # 5,000 registrations: more than one progress page (4,096 rows), so the bar moves before the end.
    for start in range(0, 5_000, 1_000):
        ledger.post([registration(f"C{n}") for n in range(start, start + 1_000)])
    told: list[int] = []
    report = ledger.verify(progress=told.append)
    assert report.ok
    assert sum(told) == ledger.head()
    assert len(told) >= 2
    assert all(count > 0 for count in told)


def test_import_takes_its_total_from_the_export_header(tmp_path: Path) -> None:
    from ledger.cli import _export_size

    export = tmp_path / "ledger.jsonl"
    export.write_text(
        '{"format":"cadre-ledger-export/1","ledger_id":"x","position":12,"head_hash":"00"}\n{}\n'
    )
    assert _export_size(export) == 12
    export.write_text("not json\n")
    assert _export_size(export) is None
    assert _export_size(tmp_path / "missing.jsonl") is None


def test_the_postgres_extra_is_named_for_a_url_with_a_schema_too() -> None:
    # `?schema=` made `init` create the schema with psycopg before the driver was checked.
    ran = _without_psycopg("init", "-d", "postgresql://postgres@127.0.0.1:5432/test?schema=no_driver")
    assert ran.returncode == 2, ran.stderr
    assert "pip install 'cadre-ledger[postgres]'" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_demo_today_before_the_demo_calendar_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "-d", f"sqlite:///{tmp_path / 'a.db'}", "--today", "1999-01-01"])
    assert result.exit_code == 2, result.output
    assert "--today:" in result.output and "2020" in result.output


def test_a_demo_run_again_says_its_events_were_recorded_already(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    assert runner.invoke(app, ["demo", "-d", url, "--today", "2020-03-01"]).exit_code == 0
    again = runner.invoke(app, ["demo", "-d", url, "--today", "2020-03-01"])
    assert again.exit_code == 0, again.output
    assert re.search(r"seeded 0 events \(\d+ were recorded already\)", again.output), again.output


def test_serve_on_an_address_this_machine_does_not_have_names_the_host(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert runner.invoke(app, ["init", "-d", url]).exit_code == 0
    ran = subprocess.run(
        [*LEDGER, "serve", "-d", url, "--host", "192.0.2.1", "--port", "8799"],  # TEST-NET-1
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=60,
        check=False,
    )
    assert ran.returncode == 2, ran.stderr
    assert "--host: cannot listen on 192.0.2.1:8799" in ran.stderr
    assert "serving" not in ran.stderr


def test_a_full_disk_behind_standard_output_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert runner.invoke(app, ["init", "-d", url]).exit_code == 0
    with open("/dev/full", "w") as full:
        ran = subprocess.run(
            [*LEDGER, "policy", "show", "-d", url, "--format", "json"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=_environment(),
            check=False,
        )
    assert ran.returncode == 1
    assert "Traceback" not in ran.stderr
    assert "cannot write the output" in ran.stderr
