"""Every example of README.md and docs/*.md, run as a reader would, its output held to the page.

What counts as an example. A fenced ```sh or ```python block is an example; when the next block (blank lines
between, nothing else) is a ```text or ```json block, that block is its output. Indented blocks are
synopses (usage lines, settings, `make` targets) and are not run. The fenced blocks of one page run in
order, in one fresh directory, with the venv's bin first on PATH, `COLUMNS=100` and unbuffered Python, so
that stdout and stderr interleave as a terminal shows them (they are compared together). A sh block's
`cd` and `export` carry over to the next block, as in one terminal; `cd "$(mktemp -d)"` makes a directory
under the test's own temporary directory. A sh block must exit 0, unless an HTML comment right above it
says otherwise:

    <!-- exit 2 -->                 the block's last command exits 2 (a dry run that lists errors)
    <!-- not run: REASON -->        not run (it needs what a test cannot have); the reason is required

The only rewriting: a line `. .venv/bin/activate` is dropped (the venv is on PATH already), and
`http://127.0.0.1:8000` becomes the port of a `ledger serve` the harness starts, over the page's
`ledger.db`, before the first block that names that URL (ready when /health/ready answers 200). The demo
city, `ledger demo --scale small --today 2026-11-21`, is seeded once per test session by running exactly that
command; a block line that is that command copies the seeded database into the current directory and prints
the seeding's own output, so that each page does not spend five seconds seeding it again.

How outputs compare. Masked on both sides: UUIDs, API keys (`cl_<key id>_<secret>`), hex digests and ids
(8 to 64 hex digits), RFC 3339 instants and a command's own duration (`in 4.9 s`). In the page, `…` is a
wildcard within its line (a hex fragment touching it, `e093…`, belongs to it), and a line that is only `…`
stands for any number of lines. A ```json output is compared as JSON, value by value: an object with the key
`"…"` may have more members, a string with `…` is a wildcard pattern, a list whose last element is a string
starting with `…` may go on; numbers, booleans and every other string are exact.

`DOCS_EXAMPLES_UPDATE=1` writes the real output into the page instead of failing, for regenerating
outputs after a change (then trim and review the diff; a JSON output is written indented).

docs/events.md's JSON examples are input shapes: each line must decode, with `ledger.wire`, as the event
type it names. docs/audit.md's standard-library export check is run on a real and a tampered export by
tests/integration/test_audit_docs.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledger.wire import decode_event_json

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
DEMO_COMMAND = "ledger demo --scale small --today 2026-11-21"
DOCS_URL = "http://127.0.0.1:8000"
READY_DEADLINE_SECONDS = 60.0
BLOCK_TIMEOUT_SECONDS = 120.0
UPDATE = os.environ.get("DOCS_EXAMPLES_UPDATE") == "1"

FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!--\s*(exit\s+(\d+)|not run:\s*(.+?))\s*-->\s*\Z", re.DOTALL)
_MASKS = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "⟨uuid⟩"),
    (re.compile(r"\bcl_[0-9a-f]{16}_[A-Za-z0-9_-]{43}"), "⟨api key⟩"),
    (
        re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)"),
        "⟨instant⟩",
    ),
    (re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{8,64}(?![0-9A-Za-z])"), "⟨hex⟩"),
    (re.compile(r"\bin \d+(?:\.\d+)? s\b"), "in ⟨seconds⟩ s"),
]
_WILDCARD = re.compile(r"[0-9a-f]*…[0-9a-f]*")


@dataclass
class Block:
    kind: str
    body: str
    start: int  # offset of the body in the page
    end: int
    line: int
    marker: str | None  # the HTML comment right above, if any
    gap: str  # the text between the previous block and this one


@dataclass
class Example:
    code: Block
    output: Block | None
    exit_code: int
    skip: str | None


def blocks(text: str) -> list[Block]:
    found: list[Block] = []
    previous_end = 0
    for match in FENCE.finditer(text):
        before = text[previous_end : match.start()]
        marker = MARKER.search(before.rstrip() + "\n") if "<!--" in before else None
        found.append(
            Block(
                kind=match.group(1),
                body=match.group(2),
                start=match.start(2),
                end=match.end(2),
                line=text.count("\n", 0, match.start()) + 1,
                marker=marker.group(1) if marker else None,
                gap=before,
            )
        )
        previous_end = match.end()
    return found


def examples(text: str) -> list[Example]:
    found = blocks(text)
    result: list[Example] = []
    for index, block in enumerate(found):
        if block.kind not in ("sh", "python"):
            continue
        following = found[index + 1] if index + 1 < len(found) else None
        output = (
            following
            if following is not None and following.kind in ("text", "json") and not following.gap.strip()
            else None
        )
        marker = MARKER.fullmatch(f"<!-- {block.marker} -->") if block.marker else None
        exit_code = int(marker.group(2)) if marker and marker.group(2) else 0
        skip = marker.group(3) if marker and marker.group(3) else None
        result.append(Example(block, output, exit_code, skip))
    return result


def mask(text: str) -> str:
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def _line_pattern(expected: str) -> str:
    parts = _WILDCARD.split(mask(expected).rstrip())
    return ".*".join(re.escape(part) for part in parts)


def text_differs(expected: str, actual: str) -> bool:
    """Whether `actual` is not what the page shows (masked, `…` a wildcard; a `…` line: any lines)."""
    patterns = [
        r"(?:[^\n]*\n)*?" if line.strip() == "…" else _line_pattern(line) + r"[ \t]*\n"
        for line in expected.strip("\n").splitlines()
    ]
    lines = [line.rstrip() for line in mask(actual).strip("\n").splitlines()]
    return re.fullmatch("".join(patterns), "".join(f"{line}\n" for line in lines)) is None


def json_differences(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Where `actual` differs from the page's JSON `expected` (masked; `…` elides, see the module doc)."""
    if isinstance(expected, str) and "…" in expected:
        if expected.strip() == "…":
            return []
        if not isinstance(actual, str) or re.fullmatch(_line_pattern(expected), mask(actual)) is None:
            return [f"{path}: {actual!r} does not match {expected!r}"]
        return []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: {actual!r} is not an object"]
        keys = [key for key in expected if key != "…"]
        differences = [f"{path}: {key!r} is missing" for key in keys if key not in actual]
        if "…" not in expected:
            differences += [f"{path}: {key!r} is not shown" for key in actual if key not in expected]
        for key in keys:
            if key in actual:
                differences += json_differences(expected[key], actual[key], f"{path}.{key}")
        return differences
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: {actual!r} is not a list"]
        open_ended = bool(expected) and isinstance(expected[-1], str) and expected[-1].startswith("…")
        shown = expected[:-1] if open_ended else expected
        if len(actual) < len(shown) or (not open_ended and len(actual) != len(shown)):
            return [f"{path}: {len(actual)} items, the page shows {len(shown)}"]
        differences = []
        for number, (want, got) in enumerate(zip(shown, actual, strict=False)):
            differences += json_differences(want, got, f"{path}[{number}]")
        return differences
    if isinstance(expected, str) and isinstance(actual, str):
        return [] if mask(expected) == mask(actual) else [f"{path}: {actual!r}, the page shows {expected!r}"]
    if type(expected) is not type(actual) or expected != actual:
        return [f"{path}: {actual!r}, the page shows {expected!r}"]
    return []


def output_differs(output: Block, actual: str) -> str | None:
    """None when `actual` is what the output block shows, else a description of the difference."""
    if output.kind == "json":
        try:
            got = json.loads(actual)
        except ValueError:
            return f"the output is not JSON:\n{actual}"
        differences = json_differences(json.loads(output.body), got)
        return "\n".join(differences[:20]) or None
    return (
        f"the page shows:\n{output.body}\nthe example printed:\n{actual}"
        if text_differs(output.body, actual)
        else None
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """`ledger serve` on a free port over `directory`'s ledger.db, ready (/health/ready answers 200)."""

    def __init__(self, directory: Path, environment: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.log = log
        with log.open("wb") as stream:
            self.process = subprocess.Popen(
                [str(BIN / "ledger"), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=directory,
                env=environment,
                stdout=stream,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"`ledger serve` exited with {self.process.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/health/ready", timeout=5
                ) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)  # a bounded poll of readiness, not a wait for it
        self.stop()
        pytest.fail(f"`ledger serve` was not ready within {READY_DEADLINE_SECONDS} s:\n{log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def base_environment(scratch: Path) -> dict[str, str]:
    kept = {key: value for key, value in os.environ.items() if not key.startswith(("LEDGER_", "PYTHON"))}
    return kept | {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "COLUMNS": "100",
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
        "TMPDIR": str(scratch),
    }


@pytest.fixture(scope="session")
def demo_city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the demo city's ledger.db and `output`, what seeding it printed."""
    directory = tmp_path_factory.mktemp("demo-city")
    ran = subprocess.run(
        ["bash", "-e", "-c", DEMO_COMMAND],
        cwd=directory,
        env=base_environment(directory),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
        timeout=BLOCK_TIMEOUT_SECONDS,
    )
    assert ran.returncode == 0, ran.stdout
    (directory / "output").write_text(ran.stdout)
    return directory


class Reader:
    """One page's terminal: blocks run in order, `cd` and `export` carried from one to the next."""

    def __init__(self, scratch: Path, demo: Path) -> None:
        self.scratch = scratch
        self.demo = demo
        self.state = scratch / ".state"
        self.state.mkdir()
        self.cwd = scratch / "work"
        self.cwd.mkdir()
        self.environment = base_environment(scratch)
        self.server: Server | None = None

    def script(self, body: str) -> str:
        lines = []
        for line in body.splitlines():
            if line.strip() == ". .venv/bin/activate":
                continue
            seeded = f'cp -r "{self.demo}"/ledger.db* . && cat "{self.demo}/output"'
            lines.append(seeded if line.strip() == DEMO_COMMAND else line)
        text = "\n".join(lines)
        if DOCS_URL in text:
            if self.server is None:
                self.server = Server(self.cwd, self.environment, self.scratch / "server.log")
            text = text.replace(DOCS_URL, f"http://127.0.0.1:{self.server.port}")
        state = self.state
        return (
            f'[ -f "{state}/env" ] && . "{state}/env"\n'
            f'trap \'__rc=$?; export -p > "{state}/env"; pwd > "{state}/cwd"; exit $__rc\' EXIT\n'
            f"{text}\n"
        )

    def run(self, example: Example) -> tuple[int, str]:
        code = example.code
        if code.kind == "sh":
            command = ["bash", "-e", "-c", self.script(code.body)]
        else:
            command = [sys.executable, "-c", code.body]
        ran = subprocess.run(
            command,
            cwd=self.cwd,
            env=self.environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
            timeout=BLOCK_TIMEOUT_SECONDS,
        )
        if (self.state / "cwd").exists():
            self.cwd = Path((self.state / "cwd").read_text().strip())
        return ran.returncode, ran.stdout

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


def _runnable(page: Path) -> bool:
    return any(example.code.kind in ("sh", "python") for example in examples(page.read_text()))


@pytest.fixture
def reader(tmp_path: Path, demo_city: Path) -> Iterator[Reader]:
    opened = Reader(tmp_path, demo_city)
    try:
        yield opened
    finally:
        opened.close()


def _replace_output(page: Path, output: Block, actual: str) -> None:
    """DOCS_EXAMPLES_UPDATE=1: write `actual` as `output`'s body in the page (found by its old body)."""
    text = page.read_text()
    if output.kind == "json":
        actual = json.dumps(json.loads(actual), ensure_ascii=False, indent=2)
    replaced = text[: output.start] + actual.strip("\n") + "\n" + text[output.end :]
    page.write_text(replaced)


@pytest.mark.parametrize(
    "page", [page for page in PAGES if _runnable(page)], ids=lambda page: page.relative_to(ROOT).as_posix()
)
def test_every_example_prints_what_the_page_says(page: Path, reader: Reader) -> None:
    found = examples(page.read_text())
    failures = []
    results = []
    for example in found:
        if example.skip:
            continue
        status, printed = reader.run(example)
        where = f"{page.name}:{example.code.line}"
        if status != example.exit_code:
            pytest.fail(
                f"{where}: exit {status}, the page expects {example.exit_code}\n"
                f"{example.code.body}\n{printed}"
            )
        if example.output is not None:
            results.append((example, printed))
    # From the last output to the first, so that updating a page keeps the earlier offsets right.
    for example, printed in reversed(results):
        assert example.output is not None
        difference = output_differs(example.output, printed)
        if difference and UPDATE:
            _replace_output(page, example.output, printed)
        elif difference:
            failures.append(f"{page.name}:{example.code.line}:\n{example.code.body}\n{difference}")
    assert not failures, "\n\n".join(reversed(failures))


def test_every_example_not_run_says_why() -> None:
    for page in PAGES:
        for example in examples(page.read_text()):
            marker = example.code.marker
            if marker is not None:
                assert MARKER.fullmatch(f"<!-- {marker} -->"), f"{page.name}:{example.code.line}: {marker}"


def test_the_event_examples_decode_as_the_type_they_name() -> None:
    """docs/events.md shows each event type's JSON; each line decodes, strictly, as that type."""
    text = (ROOT / "docs" / "events.md").read_text()
    lines = [
        line
        for block in blocks(text)
        if block.kind == "json"
        for line in block.body.splitlines()
        if line.strip()
    ]
    assert len(lines) >= 20, "the event examples were not found"
    for line in lines:
        event = decode_event_json(line.encode())
        assert event.type == json.loads(line)["type"], line


def test_the_matching_catches_a_wrong_number() -> None:
    """The masks hide what differs from run to run, and nothing else."""
    assert not text_differs(
        "ok 01a23584 at 2026-11-21T05:46:41.261059Z\n", "ok 9f00aa11 at 2027-01-01T00:00:00Z"
    )
    assert text_differs("position 21247, 4.00 points\n", "position 21248, 4.00 points")
    assert not text_differs("head e093… tree\n…\nend\n", "head 1234abcd tree\nmore\nlines\nend")
    assert not json_differences(
        {"a": "e093…", "…": "…", "n": [1, "… more"]}, {"a": "ff", "b": 2, "n": [1, 2, 3]}
    )
    assert json_differences({"points": "4.00"}, {"points": "4.50"})
    assert json_differences({"position": 7}, {"position": 7, "extra": 1})
    assert shutil.which("bash")
