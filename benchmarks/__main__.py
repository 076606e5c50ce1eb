"""Run the benchmarks and print one table: `python -m benchmarks [b1 … b11 growth] [--growth-10m]`.

Each benchmark runs in a process of its own, so that its peak RSS is its own and no benchmark inherits
another's heap, caches or frozen garbage. The parent collects the results (JSON), prints the table of
targets (target, measured, baseline, ratio, met?) and the growth table, saves everything under
`benchmarks/.cache/results/` and plots the growth (cost against events) to a PNG.

growth: B3 and B5 at 100k and 1M events (the 1M figures are the main run's when it ran B3 and B5), and with
`--growth-10m` at 10M too (building that ledger once takes many minutes; it is cached like the others).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec

from benchmarks.workload import CACHE_DIR, Result, Size, format_digest, log, machine

MODULES: Final = {
    "b1": "benchmarks.b1_ingest",
    "b2": "benchmarks.b2_http_ingest",
    "b3": "benchmarks.b3_rankings",
    "b4": "benchmarks.b4_history",
    "b5": "benchmarks.b5_rebuild",
    "b6": "benchmarks.b6_verify",
    "b7": "benchmarks.b7_api_memory",
    "b8": "benchmarks.b8_views",
    "b9": "benchmarks.b9_postgres",
    "b10": "benchmarks.b10_writers",
    "b11": "benchmarks.b11_restart",
    "b12": "benchmarks.b12_proofs",
    "b13": "benchmarks.b13_verifier",
    "b15": "benchmarks.b15_units",
    "b16": "benchmarks.b16_console",
}
SIZED: Final = ("b3", "b5")
ALL: Final = (*MODULES, "growth")


def _child(name: str, size: Size, output: Path) -> None:
    """Run one benchmark in this process and write its results to `output`."""
    import importlib

    module = importlib.import_module(MODULES[name])
    value = module.run(size) if name in SIZED else module.run()
    results = value if isinstance(value, list) else [value]
    output.write_bytes(msgspec.json.encode(results))


def _spawn(name: str, size: Size = "1m") -> list[Result]:
    """Run one benchmark in a child process; a failure becomes a 'not run' line with the reason."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False, dir=CACHE_DIR) as handle:
        output = Path(handle.name)
    command = [sys.executable, "-m", "benchmarks", "--child", name, "--size", size, "--out", str(output)]
    started = time.perf_counter()
    log(f"{name} ({size}) starting")
    done = subprocess.run(command, check=False)
    seconds = time.perf_counter() - started
    try:
        if done.returncode != 0:
            return [
                Result(
                    id=name.upper(),
                    what=f"{name} ({size})",
                    target="",
                    status="not run",
                    reason=f"the benchmark process failed with exit code {done.returncode} (see its stderr)",
                )
            ]
        results = msgspec.json.decode(output.read_bytes(), type=list[Result])
    finally:
        output.unlink(missing_ok=True)
    for result in results:
        result.details["benchmark_seconds"] = round(seconds, 1)
        result.details["size"] = size
    log(f"{name} ({size}) done in {seconds:.0f} s")
    return results


# Printing.


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def table(results: list[Result]) -> str:
    """The targets as a Markdown table: one line per figure, one more per further baseline."""
    lines = [
        "| id | what | target | measured | baseline (same run) | ratio | met? | peak RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        if result.status != "ok":
            reason = result.reason[:160]
            lines.append(
                f"| {result.id} | {result.what} | {result.target} | not run | — | — | ({reason}) | — |"
            )
            continue
        unit = result.unit
        baselines = result.baselines or [("—", 0.0)]
        for index, (what, value) in enumerate(baselines):
            ratio = result.ratio(value) if value else None
            baseline = f"{_number(value, unit.split()[0])} — {what}" if value else "—"
            ratio_text = f"{ratio:.2f}×" if ratio is not None else "—"
            if index == 0:
                met = "yes" if result.met else "no" if result.met is not None else "—"
                extra = str(result.details.get("note", ""))
                if result.id == "B3":
                    extra = f", p99 {result.details['p99_ms']:.1f} ms"
                measured = _number(result.measured, unit) + extra
                lines.append(
                    f"| {result.id} | {result.what} | {result.target} | {measured} "
                    f"| {baseline} | {ratio_text} | {met} | {_number(result.peak_rss_mb, 'MB')} |"
                )
            else:
                lines.append(f"| | | | | {baseline} | {ratio_text} | | |")
    return "\n".join(lines)


def growth_rows(results: list[Result]) -> list[dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    for result in results:
        if result.status != "ok" or result.id not in ("B3", "B5"):
            continue
        events = int(result.details["events"])
        row = rows.setdefault(events, {"events": events, "size": result.details.get("size")})
        if result.id == "B3":
            row["b3_p50_ms"] = result.details["p50_ms"]
            row["b3_p99_ms"] = result.details["p99_ms"]
            row["b3_sql_p50_ms"] = result.details.get("baseline_p50_ms")
            row["b3_open_s"] = result.details["projections_open_seconds"]
        else:
            row["b5_events_per_second"] = result.measured
            row["b5_seconds"] = result.details["rebuild_seconds_median"]
            row["b5_peak_rss_mb"] = result.peak_rss_mb
    return [rows[events] for events in sorted(rows)]


def growth_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| events | B3 p50 | B3 p99 | SQL GROUP BY p50 | B5 rebuild | B5 rate | B5 peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        sql = row.get("b3_sql_p50_ms")
        lines.append(
            f"| {row['events']:,} | {_number(row.get('b3_p50_ms'), 'ms')} "
            f"| {_number(row.get('b3_p99_ms'), 'ms')} "
            f"| {_number(sql, 'ms') if sql else '—'} | {_number(row.get('b5_seconds'), 's')} "
            f"| {_number(row.get('b5_events_per_second'), 'events/s')} "
            f"| {_number(row.get('b5_peak_rss_mb'), 'MB')} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> bool:
    """Cost against events, log-log: B3's latency and B5's rebuild time. False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (pip install -e '.[bench]'): no plot")
        return False
    events = [row["events"] for row in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("b3_p50_ms", "p50"), ("b3_p99_ms", "p99"), ("b3_sql_p50_ms", "SQL GROUP BY p50")):
        points = [(row["events"], row[key]) for row in rows if row.get(key)]
        if points:
            left.plot(*zip(*points, strict=True), marker="o", label=label)
    left.axhline(20, color="grey", linestyle="--", linewidth=1, label="target p50 20 ms")
    left.axhline(100, color="grey", linestyle=":", linewidth=1, label="target p99 100 ms")
    left.set(xscale="log", yscale="log", xlabel="events in the log", ylabel="ms", title="B3: ranking of all")
    left.legend()
    points = [(row["events"], row["b5_seconds"]) for row in rows if row.get("b5_seconds")]
    if points:
        right.plot(*zip(*points, strict=True), marker="o", label="rebuild")
    right.plot(events, [count / 100_000 for count in events], linestyle="--", label="100,000 events/s")
    right.set(xscale="log", yscale="log", xlabel="events in the log", ylabel="s", title="B5: rebuild")
    right.legend()
    figure.suptitle("cadre-ledger: cost against events (demo city, seed 7)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def _cpu_seconds() -> tuple[float, float]:
    """(busy seconds of every core of the machine, CPU seconds of this process and its children) so far."""
    import resource

    ticks = os.sysconf("SC_CLK_TCK")
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    busy = (sum(fields[:8]) - idle) / ticks
    ours = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        ours += usage.ru_utime + usage.ru_stime
    return busy, ours


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run: {', '.join(ALL)} (default: all)")
    parser.add_argument("--growth-10m", action="store_true", help="add the 10M-event growth point (slow)")
    parser.add_argument(
        "--plot", type=Path, default=CACHE_DIR / "growth.png", help="where the growth PNG goes"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--size", default="1m", choices=["100k", "1m", "10m"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.child:
        _child(arguments.child, arguments.size, arguments.out)
        return 0

    names = arguments.names or list(ALL)
    unknown = [name for name in names if name not in ALL]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(ALL)}")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    about = machine()
    if any(name not in ("b1", "b2") for name in names):
        # Once, here: each benchmark's process inherits it (see workload.format_digest).
        log("digest of the stored format (decides which cached city to use)")
        about["format_digest"] = format_digest()
    started = time.perf_counter()
    busy_before, ours_before = _cpu_seconds()
    results: list[Result] = []
    for name in names:
        if name != "growth":
            results.extend(_spawn(name))
    growth: list[Result] = []
    if "growth" in names:
        sizes: list[Size] = ["100k", "1m", "10m"] if arguments.growth_10m else ["100k", "1m"]
        for size in sizes:
            for name in SIZED:
                reused = [r for r in results if r.id == name.upper() and r.details.get("size") == size]
                growth.extend(reused or _spawn(name, size))
    seconds = time.perf_counter() - started
    about["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    busy_after, ours_after = _cpu_seconds()
    # Other work on the machine during the run, in cores on average (of os.cpu_count()).
    about["cores_busy_mean"] = round((busy_after - busy_before) / seconds, 2)
    about["cores_ours_mean"] = round((ours_after - ours_before) / seconds, 2)
    about["cores_others_mean"] = round(max(0.0, about["cores_busy_mean"] - about["cores_ours_mean"]), 2)

    if results:
        print()
        print(table(results))
    rows = growth_rows(growth)
    if rows:
        print()
        print(growth_table(rows))
        if plot(rows, arguments.plot):
            print(f"\nplot: {arguments.plot}")
    print(
        f"\n{about['cpu']}, {about['cores']} cores, {about['memory_gb']} GB; Python {about['python']}, "
        f"SQLite {about['sqlite']}; load average {about['load_average']} before, "
        f"{about['load_average_after']} after; cores busy {about['cores_busy_mean']} on average, "
        f"{about['cores_ours_mean']} of them the benchmarks', {about['cores_others_mean']} other work; "
        f"{seconds:.0f} s in all"
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    record = CACHE_DIR / "results" / f"{stamp}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(
        json.dumps(
            {
                "machine": about,
                "seconds": seconds,
                "results": msgspec.to_builtins(results),
                "growth": rows,
            },
            indent=2,
        )
    )
    print(f"results: {record}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
