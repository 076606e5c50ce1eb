"""The README's first CLI example, run as a reader would: each `sh` block in order in one fresh directory,
its output held to the `text` block after it (ids, hashes and times masked: they differ on every run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"
# What differs from run to run: UUIDs, hex digests and key ids, recording instants.
_VARYING = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{8}\b|[0-9a-f]{16,64}|"
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"
)


def masked(text: str) -> list[str]:
    return [_VARYING.sub("…", line).rstrip() for line in text.strip().splitlines()]


def python_example() -> tuple[str, str]:
    """(the `python` block, its `text` block) of the section "A first example: Python"."""
    text = README.read_text()
    section = text[text.index("## A first example: Python") : text.index("## Layout")]
    found = re.search(r"```python\n(.*?)```\s*```text\n(.*?)```", section, flags=re.DOTALL)
    assert found is not None, "the Python example was not found"
    return found.group(1), found.group(2)


def example_blocks() -> list[tuple[str, str]]:
    """(`sh` block, the `text` block that follows it) of the section "A first example: the CLI"."""
    text = README.read_text()
    section = text[text.index("## A first example: the CLI") : text.index("## Rankings")]
    return re.findall(r"```sh\n(.*?)```\s*```text\n(.*?)```", section, flags=re.DOTALL)


def test_the_first_examples_print_what_the_readme_says(tmp_path: Path) -> None:
    blocks = example_blocks()
    assert len(blocks) >= 5, "the section's sh/text pairs were not found"
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("LEDGER_DATABASE")
    } | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "200"}
    for script, expected in blocks:
        # The setup lines are the reader's: the test is already in a fresh directory with the venv.
        lines = [line for line in script.splitlines() if not line.startswith((". .venv/bin/activate", "cd "))]
        ran = subprocess.run(
            ["bash", "-e", "-c", "\n".join(lines)],
            cwd=tmp_path,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # in the order a terminal shows them
            text=True,
            check=False,
        )
        assert ran.returncode == 0, f"{script}\n{ran.stdout}"
        assert masked(ran.stdout) == masked(expected), script
    # "In the same directory, the same ledger from Python".
    script, expected = python_example()
    ran = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout
    assert masked(ran.stdout) == masked(expected)
