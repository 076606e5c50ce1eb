"""The shell face as a user meets it: the done-criteria of the ledger core, command by command.

Exit codes: 0 success; 1 verification failed or conflict; 2 invalid input or usage.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger.cli import app
from tests.support import alter_state, raw_sql

runner = CliRunner()

REGISTRATION = {
    "type": "cadre.registered",
    "cadre_id": "C1",
    "effective_on": "2024-01-02",
    "source": {"system": "hr", "key": "reg-C1"},
    "name": "李四",
    "unit_id": "U01",
    "grade": "一级科员",
    "leadership": True,
    "principal": False,
    "service_started_on": "2012-07-01",
    "grade_since": "2021-01-01",
}
MERIT = {
    "type": "merit.awarded",
    "cadre_id": "C1",
    "effective_on": "2024-03-01",
    "source": {"system": "merit-office", "key": "m-1"},
    "award": "merit_third_class",
    "level": "municipal",
    "document": "组通〔2024〕3号",
}


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("LEDGER_DATABASE_URL", url)
    return url


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def write_jsonl(path: Path, *events: dict) -> Path:
    path.write_text(
        "".join(json.dumps(event, ensure_ascii=False) + "\n" for event in events), encoding="utf-8"
    )
    return path


def head(database: str) -> int:
    return raw_sql(database, "SELECT MAX(position) FROM ledger_chain")[0][0]


def test_every_command_has_help() -> None:
    for command in (
        "init",
        "post",
        "template",
        "history",
        "verify",
        "checkpoint",
        "export",
        "import",
        "accrue",
        "demo",
        "policy",
    ):
        code, output = run(command, "--help")
        assert code == 0 and "Usage" in output, command


def test_posting_the_same_file_twice_replays_every_item(database: str, tmp_path: Path) -> None:
    events = write_jsonl(tmp_path / "events.jsonl", REGISTRATION, MERIT)
    code, output = run("post", str(events), "--format", "json")
    assert code == 0, output
    first = json.loads(output)
    assert [item["replayed"] for item in first["results"]] == [False, False]
    size = head(database)
    code, output = run("post", str(events), "--format", "json")
    assert code == 0
    again = json.loads(output)
    assert [item["replayed"] for item in again["results"]] == [True, True]
    assert [item["event_id"] for item in again["results"]] == [item["event_id"] for item in first["results"]]
    assert head(database) == size


def test_the_same_key_with_other_content_exits_1_and_records_nothing(database: str, tmp_path: Path) -> None:
    run("post", str(write_jsonl(tmp_path / "a.jsonl", REGISTRATION, MERIT)))
    size = head(database)
    changed = dict(MERIT, level="national")
    code, output = run("post", str(write_jsonl(tmp_path / "b.jsonl", changed)))
    assert code == 1
    assert "conflict" in output and "m-1" in output
    assert head(database) == size


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "merit.invented"}, "type"),
        ({"effective_on": "2024-02-30"}, "effective_on"),
        ({"cadre_id": "NOBODY"}, "cadre_id"),
        ({"effective_on": "2099-01-01"}, "effective_on"),
        ({"points": 12.5, "override_reason": "x"}, "points"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_input_exits_2_naming_the_field_and_records_nothing(
    database: str, tmp_path: Path, change: dict, field: str
) -> None:
    run("post", str(write_jsonl(tmp_path / "a.jsonl", REGISTRATION)))
    size = head(database)
    bad = dict(MERIT, **change)
    code, output = run(
        "post",
        str(write_jsonl(tmp_path / "bad.jsonl", dict(MERIT, source={"system": "x", "key": "ok"}), bad)),
    )
    assert code == 2, output
    assert f"`{field}`" in output and "line 2" in output
    assert head(database) == size


def test_verify_names_the_position_of_a_changed_byte(database: str, tmp_path: Path) -> None:
    run("post", str(write_jsonl(tmp_path / "a.jsonl", REGISTRATION, MERIT)))
    assert run("verify")[0] == 0
    alter_state(database, 3, b'"municipal"', b'"provincial"')
    code, output = run("verify")
    assert code == 1
    assert "position 3" in output and "altered" in output


def test_deleting_the_newest_events_is_caught_against_an_earlier_checkpoint(
    database: str, tmp_path: Path
) -> None:
    run("post", str(write_jsonl(tmp_path / "a.jsonl", REGISTRATION, MERIT)))
    checkpoint = tmp_path / "checkpoint.json"
    assert run("checkpoint", "--output", str(checkpoint))[0] == 0
    raw_sql(database, "DELETE FROM stored_events WHERE rowid = 3")
    raw_sql(database, "DELETE FROM ledger_chain WHERE position = 3")
    assert run("verify")[0] == 0
    code, output = run("verify", "--against", str(checkpoint))
    assert code == 1 and "truncated" in output


def test_history_counts_a_retroactive_reversal_only_when_known(database: str, tmp_path: Path) -> None:
    code, output = run(
        "post", str(write_jsonl(tmp_path / "a.jsonl", REGISTRATION, MERIT)), "--format", "json"
    )
    award = json.loads(output)["results"][1]
    reversal = {
        "type": "entry.reversed",
        "cadre_id": "C1",
        "effective_on": "2024-09-01",
        "source": {"system": "review", "key": "rev-1"},
        "target_event_id": award["event_id"],
        "reason": "复核: the award was granted twice",
    }
    run("post", str(write_jsonl(tmp_path / "r.jsonl", reversal)))
    code, output = run(
        "history", "C1", "--as-of", "2024-06-30", "--known-at", str(award["position"]), "--format", "json"
    )
    before = json.loads(output)
    code, output = run("history", "C1", "--as-of", "2024-06-30", "--format", "json")
    after = json.loads(output)
    assert before["total"] == award["points"] == "4.00"
    assert after["total"] == "0.00"
    assert [entry["type"] for entry in after["entries"]] == [
        "cadre.registered",
        "merit.awarded",
        "entry.reversed",
    ]
    assert after["entries"][1]["reversed_by"] == after["entries"][2]["event_id"]
    code, output = run("history", "C1")
    assert code == 0 and "entry.reversed" in output


def test_export_then_import_gives_the_same_head(database: str, tmp_path: Path, monkeypatch) -> None:
    run("post", str(write_jsonl(tmp_path / "a.jsonl", REGISTRATION, MERIT)))
    exported = tmp_path / "log.jsonl"
    assert run("export", str(exported))[0] == 0
    code, output = run("verify", "--format", "json")
    original = json.loads(output)
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{tmp_path / 'copy.db'}")
    code, output = run("import", str(exported))
    assert code == 0, output
    code, output = run("verify", "--format", "json")
    assert json.loads(output)["head_hash"] == original["head_hash"]


def test_an_import_with_a_changed_line_is_refused(database: str, tmp_path: Path, monkeypatch) -> None:
    run("post", str(write_jsonl(tmp_path / "a.jsonl", REGISTRATION, MERIT)))
    exported = tmp_path / "log.jsonl"
    run("export", str(exported))
    exported.write_text(
        exported.read_text(encoding="utf-8").replace("municipal", "national"), encoding="utf-8"
    )
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{tmp_path / 'copy.db'}")
    code, _output = run("import", str(exported))
    assert code == 1
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    assert raw_sql(copy, "SELECT COUNT(*) FROM ledger_chain")[0][0] == 0


def test_policy_show_and_publish(database: str, tmp_path: Path) -> None:
    assert run("init")[0] == 0
    code, output = run("policy", "show")
    assert code == 0 and 'version = "illustrative-3"' in output
    body = output.replace('version = "illustrative-3"', 'version = "local-2025"')
    path = tmp_path / "local.toml"
    path.write_text(body, encoding="utf-8")
    code, first = run("policy", "publish", str(path))
    assert code == 0 and first.startswith("published at position")
    code, second = run("policy", "publish", str(path))
    assert code == 0 and second == "already " + first
    code, output = run("policy", "show", "--format", "json")
    assert [entry["version"] for entry in json.loads(output)] == ["illustrative-3", "local-2025"]
    path.write_text(body.replace("annual_cap", "annual_capp"), encoding="utf-8")
    code, output = run("policy", "publish", str(path))
    assert code == 2 and "annual_capp" in output


def test_publishing_the_packaged_policy_again_is_a_replay(database: str, tmp_path: Path) -> None:
    from ledger.policy import illustrative_policy_text

    path = tmp_path / "illustrative.toml"
    path.write_text(illustrative_policy_text(), encoding="utf-8")
    assert run("init")[0] == 0
    code, output = run("policy", "publish", str(path))
    assert (code, output.split(" at ")[0]) == (0, "already published")


def test_read_commands_do_not_create_a_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "typo.db"
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{missing}")
    for command in (["verify"], ["history", "C1"], ["checkpoint"], ["policy", "show"]):
        code, output = run(*command)
        assert code == 2 and "ledger init" in output, command
    assert not missing.exists()


def test_error_messages_keep_the_rule_name(database: str, tmp_path: Path) -> None:
    code, output = run("post", str(write_jsonl(tmp_path / "a.jsonl", MERIT)))
    assert code == 2 and "[cadre_must_be_registered]" in output


def test_accrue_posts_base_points_once_per_period(database: str, tmp_path: Path) -> None:
    run("post", str(write_jsonl(tmp_path / "a.jsonl", REGISTRATION)))
    code, output = run("accrue", "--period", "2024Q2", "--format", "json")
    assert code == 0
    assert [item["replayed"] for item in json.loads(output)["results"]] == [False]
    code, output = run("accrue", "--period", "2024Q2", "--format", "json")
    assert [item["replayed"] for item in json.loads(output)["results"]] == [True]
    assert run("accrue", "--period", "2024Q9")[0] == 2


def test_usage_errors_exit_2(database: str) -> None:
    assert run("history")[0] == 2
    assert run("history", "C1", "--as-of", "yesterday")[0] == 2
    assert run("nonsense")[0] == 2
