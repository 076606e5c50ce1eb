"""B11 — restarts and the CLI: how long a server or a command takes on the city, beside the process start.

What is measured, on a copy of the cached city (1M events) whose read models were opened once (a
`ledger rankings` run, not timed, so that what is persisted exists as after any earlier run):

- restart: `ledger serve --workers 1` and `--workers 2`, the time from starting the process to the first
  200 of `/health/ready` (asked every 20 ms over a fresh connection; with two workers that is one of them)
  and, with two, until every worker logged that its read models are open; beside the process start alone:
  the same interpreter importing what the server imports (`ledger.cli`, `uvicorn`, `ledger.api`) and
  exiting, and for two workers the same with two spawned processes importing `ledger.api` (what uvicorn's
  spawned workers did; since 2026-12-04 `ledger serve` forks them from a parent that imported and built
  the app, `ledger.api.serving`). Target: ready ≤ 1 s on the city (≤ 5 s at 10M).
- memory: each worker's VmRSS, and VmRSS minus its file pages (RssAnon + RssShmem: what is not shared with
  other processes mapping the same files) from /proc/<pid>/status, right after it is ready; at 100k (the
  cached prefix) and 1M events, and at 10M only when the cached 10M ledger exists (it is never built here).
  Target: ≤ 500 MB per worker at 10M, file pages not counted.
- CLI reads, each end to end as a subprocess (output discarded): `ledger rankings` (all cadres),
  `ledger boards --period 2026Q2`, `ledger eligibility <a cadre>`; beside `ledger --help` (the process
  start alone). Target ≤ 1.5 s.
- CLI writes: `ledger post` of 39 and of 3,919 merit awards (a JSONL file, new source keys each run) into
  the city, and `ledger accrue --period 2026Q2` (already accrued by the demo: every item a replay), each
  end to end, beside `ledger --help`. Target for accrue: under 1 s beyond the process start.

Runs alternate (a baseline, then what it is the baseline of) since the machine is shared; medians. The
peak RSS column: the command's own (wait4's ru_maxrss) for CLI lines, the workers' VmHWM for server lines.
Every process gets a timeout and is killed past it; everything listens on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Final

import msgspec

from benchmarks.server import ServerUnavailable, memory_of, serving, worker_pids
from benchmarks.workload import (
    TODAY,
    Result,
    Size,
    cached_city,
    city,
    log,
    median,
    scratch_dir,
    url_of,
    working_copy,
)

READY_REPETITIONS: Final = {1: 3, 2: 2}
SMALL_READY_REPETITIONS: Final = {1: 2, 2: 1}
CLI_REPETITIONS: Final = 2
CLI_WRITE_REPETITIONS: Final = 1  # each takes as long as a read and changes the copy: once is enough
POST_SIZES: Final = (39, 3_919)
PERIOD: Final = "2026Q2"  # the city's last quarter: accrued by the demo
PROCESS_TIMEOUT_SECONDS: Final = 300.0
ALL_READY_TIMEOUT_SECONDS: Final = 300.0
ALL_READY_GRACE_SECONDS: Final = 30.0  # after the first ready, for the first worker's log line
READY_POLL_SECONDS: Final = 0.02
TARGET_READY_SECONDS: Final = 1.0
TARGET_READY_10M_SECONDS: Final = 5.0
TARGET_CLI_SECONDS: Final = 1.5
TARGET_ACCRUE_EXTRA_SECONDS: Final = 1.0
TARGET_WORKER_MB_10M: Final = 500.0
OPENED_LINE: Final = "read models open"  # what each worker logs (INFO, ledger.api) once its read models are
LEDGER: Final = str(Path(sys.executable).parent / "ledger")
IMPORTS: Final = "import ledger.cli, uvicorn, ledger.api"
SPAWNED_IMPORTS: Final = (
    "import ledger.cli, uvicorn, multiprocessing\n"
    "if __name__ == '__main__':\n"
    "    context = multiprocessing.get_context('spawn')\n"
    "    workers = [context.Process(target=__import__, args=('ledger.api',)) for _ in range(2)]\n"
    "    for worker in workers: worker.start()\n"
    "    for worker in workers: worker.join()\n"
    "    raise SystemExit(max(worker.exitcode or 0 for worker in workers))\n"
)


def _environment() -> dict[str, str]:
    # The database is named on each command line; nothing of the caller's LEDGER_* settings leaks in.
    return {key: value for key, value in os.environ.items() if not key.startswith("LEDGER_")}


def _timed(command: list[str], output: Path | None = None) -> tuple[float, float]:
    """Run `command` to its end (stdout to `output` or discarded): (seconds from start to exit, its peak
    RSS in MB, from wait4). Raises RuntimeError with the end of its stderr when it fails."""
    with (
        output.open("wb") if output else open(os.devnull, "wb") as stdout,
        tempfile.TemporaryFile() as stderr,
    ):
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=_environment())
        watchdog = threading.Timer(PROCESS_TIMEOUT_SECONDS, process.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
        seconds = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace")[-1500:]
            raise RuntimeError(f"{' '.join(command[:3])} … exited with {process.returncode}: {tail}")
    return seconds, usage.ru_maxrss / 1024


# Restarts.


def _all_ready(server: Any) -> tuple[float | None, str]:
    """Seconds from the start until every worker logged that its read models are open (with one worker:
    the first ready), and how that was seen; None if no worker logs it (the line changed or went)."""
    if server.workers == 1:
        return server.ready_seconds, "first 200 of /health/ready"
    while time.monotonic() - server.started < ALL_READY_TIMEOUT_SECONDS:
        seen = server.stderr_path.read_text(errors="replace").count(OPENED_LINE)
        if seen >= server.workers:
            return time.monotonic() - server.started, f"{server.workers} '{OPENED_LINE}' log lines"
        if seen == 0 and time.monotonic() - server.started > server.ready_seconds + ALL_READY_GRACE_SECONDS:
            break
        time.sleep(READY_POLL_SECONDS)
    return None, f"not observable: the workers did not log '{OPENED_LINE}'"


def _restart(path: Path, scratch: Path, workers: int) -> dict[str, Any]:
    with serving(path, scratch, workers=workers, log_level="info", poll_seconds=READY_POLL_SECONDS) as server:
        first = server.ready_seconds
        every, how = _all_ready(server)
        memory = [memory_of(pid) for pid in worker_pids(server)]
    return {"ready_seconds": first, "all_ready_seconds": every, "all_ready_seen_by": how, "workers": memory}


def _private_mb(memory: dict[str, float]) -> float:
    return memory.get("RssAnon", 0.0) + memory.get("RssShmem", 0.0)


def _restarts(path: Path, scratch: Path, repetitions: dict[int, int]) -> dict[int, list[dict[str, Any]]]:
    """Alternating: the process start alone, then a server with each number of workers."""
    runs: dict[int, list[dict[str, Any]]] = {workers: [] for workers in repetitions}
    for round_ in range(max(repetitions.values())):
        for workers, count in repetitions.items():
            if round_ >= count:
                continue
            baseline = IMPORTS if workers == 1 else SPAWNED_IMPORTS
            start_alone, _ = _timed([sys.executable, "-c", baseline])
            run = _restart(path, scratch, workers)
            run["process_start_seconds"] = start_alone
            runs[workers].append(run)
            log(
                f"B11: --workers {workers}: ready {run['ready_seconds']:.2f} s, all "
                f"{run['all_ready_seconds'] or float('nan'):.2f} s (process start {start_alone:.2f} s); "
                "private MB "
                f"{[round(_private_mb(memory)) for memory in run['workers']]}"
            )
    return runs


def _ready_results(size: str, runs: dict[int, list[dict[str, Any]]], target: float | None) -> list[Result]:
    """A line per number of workers for the time to ready, and one for the memory of its workers."""
    results = []
    for workers, items in runs.items():
        ready = median([item["ready_seconds"] for item in items])
        seen = [item["all_ready_seconds"] for item in items if item["all_ready_seconds"] is not None]
        every = median(seen) if len(seen) == len(items) else None
        alone = median([item["process_start_seconds"] for item in items])
        note = "" if workers == 1 else f"; every worker {every:.2f} s" if every else "; every worker: —"
        results.append(
            Result(
                id="B11",
                what=f"server ready after start, {size} events, `serve --workers {workers}`",
                target=f"≤ {target:g} s" if target else "— (reported)",
                measured=ready,
                unit="s",
                higher_is_better=False,
                baselines=[(f"process start alone ({workers} process(es) importing the app)", alone)],
                met=((every or ready) <= target) if target else None,
                # The workers' peak (VmHWM) when the last of these runs was ready.
                peak_rss_mb=max(memory["VmHWM"] for memory in items[-1]["workers"]),
                details={
                    "note": note,
                    "runs": items,
                    "all_ready_seconds_median": every,
                },
            )
        )
        last = items[-1]["workers"]
        private = [_private_mb(memory) for memory in last]
        resident = ", ".join(f"{memory['VmRSS']:.0f}" for memory in last)
        files = ", ".join(f"{memory.get('RssFile', 0.0):.0f}" for memory in last)
        results.append(
            Result(
                id="B11",
                what=f"memory of each worker, {size} events, `serve --workers {workers}`, just ready",
                target=f"≤ {TARGET_WORKER_MB_10M:.0f} MB at 10M (file pages not counted)",
                measured=max(private),
                unit="MB RssAnon+RssShmem",
                higher_is_better=False,
                met=(max(private) <= TARGET_WORKER_MB_10M) if size == "10M" else None,
                peak_rss_mb=max(memory["VmHWM"] for memory in last),
                details={"note": f"; VmRSS {resident} MB, file pages {files} MB", "workers": last},
            )
        )
    return results


# The CLI.


def _cli_reads(url: str, cadre_id: str) -> dict[str, list[float]]:
    commands = {
        "rankings": [LEDGER, "rankings", "--database", url, "--format", "json"],
        "boards": [LEDGER, "boards", "--period", PERIOD, "--database", url, "--format", "json"],
        "eligibility": [LEDGER, "eligibility", cadre_id, "--database", url, "--format", "json"],
    }
    times: dict[str, list[float]] = {"--help": [], **{name: [] for name in commands}}
    for _ in range(CLI_REPETITIONS):
        for name, command in commands.items():
            times["--help"].append(_timed([LEDGER, "--help"])[0])
            seconds, rss = _timed(command)
            times[name].append(seconds)
            times[f"{name} peak RSS MB"] = [*times.get(f"{name} peak RSS MB", []), rss]
            log(f"B11: ledger {name}: {seconds:.2f} s, {rss:.0f} MB (--help {times['--help'][-1]:.2f} s)")
    return times


def _post_file(path: Path, cadres: list[str], count: int, tag: str) -> Path:
    from ledger.domain.events import MeritAwarded, Source

    rng = random.Random(tag)
    events = [
        MeritAwarded(
            cadre_id=rng.choice(cadres),
            effective_on=TODAY,
            source=Source(system="merit-office", key=f"b11-{tag}-{number}"),
            award="citation",
            level="unit",
        )
        for number in range(count)
    ]
    path.write_bytes(b"".join(msgspec.json.encode(event) + b"\n" for event in events))
    return path


def _cli_writes(url: str, scratch: Path, cadres: list[str]) -> dict[str, Any]:
    times: dict[str, list[float]] = {
        "--help": [],
        **{f"post {size}": [] for size in POST_SIZES},
        "accrue": [],
    }
    for round_ in range(CLI_WRITE_REPETITIONS):
        for size in POST_SIZES:
            events = _post_file(scratch / f"post-{size}-{round_}.jsonl", cadres, size, f"{size}-{round_}")
            times["--help"].append(_timed([LEDGER, "--help"])[0])
            command = [LEDGER, "post", str(events), "--database", url, "--format", "json"]
            seconds, rss = _timed(command)
            times[f"post {size}"].append(seconds)
            times[f"post {size} peak RSS MB"] = [*times.get(f"post {size} peak RSS MB", []), rss]
            log(f"B11: ledger post of {size:,}: {times[f'post {size}'][-1]:.2f} s")
    replays: list[tuple[int, int]] = []
    for round_ in range(CLI_WRITE_REPETITIONS):
        times["--help"].append(_timed([LEDGER, "--help"])[0])
        output = scratch / f"accrue-{round_}.json"
        command = [LEDGER, "accrue", "--period", PERIOD, "--database", url, "--format", "json"]
        seconds, rss = _timed(command, output)
        times["accrue"].append(seconds)
        times["accrue peak RSS MB"] = [*times.get("accrue peak RSS MB", []), rss]
        results = json.loads(output.read_text())["results"]
        replays.append((sum(1 for item in results if item["replayed"]), len(results)))
        log(f"B11: ledger accrue {PERIOD}: {times['accrue'][-1]:.2f} s ({replays[-1][0]:,} replays)")
    return {"times": times, "accrue_replayed_of_items": replays}


def _cli_results(reads: dict[str, list[float]], writes: dict[str, Any]) -> list[Result]:
    help_seconds = median(reads["--help"] + writes["times"]["--help"])
    baseline = [("`ledger --help` (process start alone)", help_seconds)]
    results = []
    for name in ("rankings", "boards", "eligibility"):
        seconds = median(reads[name])
        results.append(
            Result(
                id="B11",
                what=f"CLI read on the city: `ledger {name}`, end to end",
                target=f"≤ {TARGET_CLI_SECONDS} s",
                measured=seconds,
                unit="s",
                higher_is_better=False,
                baselines=baseline,
                met=seconds <= TARGET_CLI_SECONDS,
                peak_rss_mb=max(reads[f"{name} peak RSS MB"]),
                details={"runs": reads[name]},
            )
        )
    for size in POST_SIZES:
        runs = writes["times"][f"post {size}"]
        results.append(
            Result(
                id="B11",
                what=f"CLI write on the city: `ledger post` of {size:,} events, end to end",
                target="— (reported)",
                measured=median(runs),
                unit="s",
                higher_is_better=False,
                baselines=baseline,
                peak_rss_mb=max(writes["times"][f"post {size} peak RSS MB"]),
                details={"runs": runs},
            )
        )
    accrue = median(writes["times"]["accrue"])
    results.append(
        Result(
            id="B11",
            what=f"CLI: `ledger accrue --period {PERIOD}` (all replays) right after opening, end to end",
            target=f"< {TARGET_ACCRUE_EXTRA_SECONDS:g} s beyond the process start",
            measured=accrue,
            unit="s",
            higher_is_better=False,
            baselines=baseline,
            met=accrue - help_seconds < TARGET_ACCRUE_EXTRA_SECONDS,
            peak_rss_mb=max(writes["times"]["accrue peak RSS MB"]),
            details={
                "note": f" ({accrue - help_seconds:.2f} s beyond the process start)",
                "runs": writes["times"]["accrue"],
                "replayed_of_items": writes["accrue_replayed_of_items"],
            },
        )
    )
    return results


# The run.


def _warm(path: Path, scratch: Path) -> tuple[list[str], float]:
    """Open the read models once (a CLI ranking, not timed as a figure); the active cadres, best first."""
    output = scratch / "warm-up.json"
    seconds, _ = _timed([LEDGER, "rankings", "--database", url_of(path), "--format", "json"], output)
    log(f"B11: first read of {path.name} (read models opened, built if absent): {seconds:.1f} s")
    return [entry["cadre_id"] for entry in json.loads(output.read_text())["entries"]], seconds


def _sized(
    size: Size, label: str, scratch: Path, repetitions: dict[int, int], target: float | None
) -> list[Result]:
    """Ready and memory on the cached ledger of `size` (the 10M one only if it exists)."""
    cached = city(size) if size != "10m" else cached_city(size)
    if cached is None:
        return [
            Result(
                id="B11",
                what=f"server ready after start and memory of each worker, {label} events",
                target=f"≤ {TARGET_READY_10M_SECONDS:g} s; ≤ {TARGET_WORKER_MB_10M:.0f} MB per worker",
                status="not run",
                reason="no cached 10M ledger (`city('10m')` builds it in about half an hour; not built here)",
            )
        ]
    source, about = cached
    path = working_copy(source, scratch / f"city-{size}.db")
    _, warm_seconds = _warm(path, scratch)
    results = _ready_results(label, _restarts(path, scratch, repetitions), target)
    for result in results:
        result.details.update(events=about["events"], first_open_seconds=warm_seconds)
    return results


def run() -> list[Result]:
    results: list[Result] = []
    with scratch_dir("b11") as scratch:
        source, about = city("1m")
        path = working_copy(source, scratch / "city.db")
        cadres, warm_seconds = _warm(path, scratch)
        url = url_of(path)
        reads = _cli_reads(url, cadres[0])
        try:
            ready = _ready_results("1M", _restarts(path, scratch, READY_REPETITIONS), TARGET_READY_SECONDS)
        except ServerUnavailable as error:
            what = "server ready after start, 1M events"
            ready = [Result(id="B11", what=what, target="", status="not run", reason=str(error))]
        writes = _cli_writes(url, scratch, cadres)
        for result in [*ready, *_cli_results(reads, writes)]:
            result.details.update(events=about["events"], first_open_seconds=warm_seconds)
            results.append(result)
        sizes: list[tuple[Size, str, dict[int, int], float | None]] = [
            ("100k", "100k", SMALL_READY_REPETITIONS, None),
            ("10m", "10M", {1: 1, 2: 1}, TARGET_READY_10M_SECONDS),
        ]
        for size, label, repetitions, target in sizes:
            try:
                results.extend(_sized(size, label, scratch, repetitions, target))
            except ServerUnavailable as error:
                what = f"server ready after start, {label} events"
                results.append(Result(id="B11", what=what, target="", status="not run", reason=str(error)))
    return results
