"""The examples of docs/audit.md, run: the standard-library export check, and the signed byte string of
a checkpoint as the page shows it (the JSON example and the text below it must be one and the same)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from ledger import Ledger
from ledger_verify.checkpoint import signed_bytes
from tests.conftest import fixed_clock, registration

AUDIT = Path(__file__).parents[2] / "docs" / "audit.md"


def blocks(kind: str) -> list[str]:
    """The fenced blocks of `kind` in docs/audit.md, in order."""
    return re.findall(rf"```{kind}\n(.*?)```", AUDIT.read_text(), flags=re.DOTALL)


def test_the_standard_library_export_check_passes_on_a_real_export(tmp_path: Path) -> None:
    (script,) = [block for block in blocks("python") if "verify_export" in block or "SUFFIX" in block]
    (tmp_path / "verify_export.py").write_text(script)
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", clock=fixed_clock) as ledger:
        ledger.post([registration("D1"), registration("D2")])
        with (tmp_path / "ledger.jsonl").open("wb") as stream:
            ledger.export(stream)
        head = ledger.head()
    ran = subprocess.run(
        [sys.executable, "verify_export.py", "ledger.jsonl"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (ran.returncode, ran.stdout) == (0, f"ok {head}\n"), ran.stderr
    lines = (tmp_path / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"D1"', b'"D9"')
    (tmp_path / "ledger.jsonl").write_bytes(b"".join(lines))
    ran = subprocess.run(
        [sys.executable, "verify_export.py", "ledger.jsonl"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 1 and "line 3: the chain breaks" in ran.stderr


def test_the_signed_text_shown_is_that_of_the_checkpoint_shown() -> None:
    text = AUDIT.read_text()
    section = text[text.index("## Checkpoints") :]
    (checkpoint,) = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", section, re.DOTALL)[:1]]
    shown = re.search(r"covers exactly these bytes.*?```text\n(.*?)```", section, re.DOTALL)
    assert shown is not None
    assert shown.group(1).encode() == signed_bytes(
        checkpoint["ledger_id"],
        checkpoint["tree_size"],
        checkpoint["root_hash"],
        checkpoint["chain_hash"],
        checkpoint["recorded_at"],
        checkpoint["key_id"],
    )
