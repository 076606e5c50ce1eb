"""Soak: a bounded mixed read/write load against a real `ledger serve`, for a fixed time.

What it measures, over `SOAK_SECONDS` (default 60) of load on 127.0.0.1:
- per route: requests, answers by status, latency p50 / p90 / p99 / max;
- throughput: requests per second, events recorded per second;
- the server's memory: VmRSS of the serving process sampled every second — when the load starts, when it
  ends, and the peak — and how much it grew per 1,000 events recorded;
- afterwards: the chain verifies, and the log grew by exactly the events the posters were told were new.

The load: the demo city (scale small, about 21,000 events, up to today) in a fresh SQLite file; `ledger
serve` with one worker; `SOAK_POSTERS` threads (default 2) posting batches of 1 to 100 merit awards and
deductions for active cadres — one batch in twenty is an earlier one posted again, which must replay — and
`SOAK_READERS` threads (default 4) reading rankings, histories, eligibility, the shortlist and boards. Each
thread waits for its answer before its next request (a closed loop), so the load is bounded by the number
of threads, and the whole run by the time. The exit status is 1 if any request failed with a 5xx or a
transport error, a replay was not a replay, or the log does not verify.

Run: `make soak` (`SOAK_SECONDS=600 make soak` for ten minutes), or `python -m soak.soak --json out.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import httpx
import msgspec

from ledger import Ledger
from ledger.access import KeyStore, Role
from ledger.demo import run_demo
from ledger.projections.service import Projections

SECONDS_DEFAULT: Final = 60.0
POSTERS_DEFAULT: Final = 2
READERS_DEFAULT: Final = 4
DEMO_SEED: Final = 7
ZONE: Final = ZoneInfo("Asia/Shanghai")
READY_DEADLINE_SECONDS: Final = 120.0
READY_POLL_SECONDS: Final = 0.1
STOP_DEADLINE_SECONDS: Final = 30.0
REQUEST_TIMEOUT_SECONDS: Final = 30.0
MEMORY_SAMPLE_SECONDS: Final = 1.0
BATCH_SIZES: Final = (1, 5, 20, 100)
REPLAY_SHARE: Final = 0.05
AWARDS: Final = ("citation", "commendation", "performance_award")
LEVELS: Final = ("unit", "county")
READS: Final = (  # route, weight
    ("GET /v1/rankings", 30),
    ("GET /v1/cadres/{id}/history", 30),
    ("GET /v1/cadres/{id}/eligibility", 25),
    ("GET /v1/eligibility", 10),
    ("GET /v1/boards", 5),
)


@dataclass
class Tally:
    """One thread's observations: latencies and statuses by route, events recorded, replays checked."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, Counter[str]] = field(default_factory=dict)
    events_new: int = 0
    replays_wrong: int = 0

    def record(self, route: str, status: str, seconds: float) -> None:
        self.latencies.setdefault(route, []).append(seconds)
        self.statuses.setdefault(route, Counter())[status] += 1

    def merge(self, other: Tally) -> None:
        for route, values in other.latencies.items():
            self.latencies.setdefault(route, []).extend(values)
        for route, counts in other.statuses.items():
            self.statuses.setdefault(route, Counter()).update(counts)
        self.events_new += other.events_new
        self.replays_wrong += other.replays_wrong


@dataclass
class City:
    """What the clients need to know: active cadres, units, periods that have ended, today."""

    cadres: list[str]
    units: list[str]
    periods: list[str]
    today: date


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def ended_quarters(today: date, count: int) -> list[str]:
    quarter = (today.month - 1) // 3  # the current quarter, 0-based: the last ended one is before it
    year = today.year
    names = []
    for _ in range(count):
        quarter -= 1
        if quarter < 0:
            quarter, year = 3, year - 1
        names.append(f"{year}Q{quarter + 1}")
    return names


def prepare(directory: Path) -> tuple[str, City, dict[str, str]]:
    """A ledger file with the demo city up to today, the read models built once, and keys."""
    url = f"sqlite:///{directory / 'soak.db'}"
    today = datetime.now(ZONE).date()
    with Ledger.open(url) as ledger:
        summary = run_demo(ledger, seed=DEMO_SEED, scale="small", today=today)
        print(f"demo city: {summary.events_posted} events, {summary.cadres} cadres in {summary.seconds} s")
        projections = Projections.open(ledger)
        ranking = projections.rankings("all", as_of=today)
        city = City(
            cadres=[entry.cadre_id for entry in ranking.entries],
            units=sorted({entry.unit_id for entry in ranking.entries}),
            periods=ended_quarters(today, 4),
            today=today,
        )
        projections.close()
    with KeyStore.open(url) as keys:
        tokens = {
            "poster": keys.create(
                "soak-poster", Role.poster, system="soak", event_types=["merit.awarded", "deduction.applied"]
            ).token,
            "reader": keys.create("soak-reader", Role.reader).token,
            "auditor": keys.create("soak-auditor", Role.auditor).token,
        }
    return url, city, tokens


def serve(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`ledger serve` with one worker (the process whose memory is sampled), once ready."""
    script = Path(sys.executable).parent / "ledger"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "ledger.cli"]
    command += ["serve", "--database", url, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--log-level", "warning"]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("LEDGER_")}
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment)
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"the server exited with {process.returncode}:\n{log.read_text()}")
            try:
                if client.get("/health/ready").status_code == 200:
                    return process
            except httpx.TransportError:
                pass
            time.sleep(READY_POLL_SECONDS)  # polling interval while the server starts
    process.kill()
    raise SystemExit(f"the server was not ready within {READY_DEADLINE_SECONDS} s:\n{log.read_text()}")


def rss_kib(pid: int) -> int:
    """VmRSS of a process and its children, in KiB (0 once it is gone)."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for each in pids:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def timed(client: httpx.Client, tally: Tally, route: str, method: str, path: str, **options: Any) -> Any:
    """One request, its latency and status recorded under `route`; the response, or None on a transport
    error."""
    started = time.perf_counter()
    try:
        response = client.request(method, path, **options)
    except httpx.TransportError as error:
        tally.record(route, f"transport: {type(error).__name__}", time.perf_counter() - started)
        return None
    tally.record(route, str(response.status_code), time.perf_counter() - started)
    return response


@dataclass
class Worker:
    """One client thread: where it sends, with which key, what it knows, when to stop, what it saw."""

    base: str
    token: str
    city: City
    number: int
    stop: threading.Event
    tally: Tally = field(default_factory=Tally)


def poster(worker: Worker) -> None:
    city, tally = worker.city, worker.tally
    rng = random.Random(f"poster-{worker.number}")
    posted: list[bytes] = []
    headers = {"Authorization": f"Bearer {worker.token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=worker.base, timeout=REQUEST_TIMEOUT_SECONDS, headers=headers) as client:
        batch = 0
        while not worker.stop.is_set():
            replay = bool(posted) and rng.random() < REPLAY_SHARE
            if replay:
                body = rng.choice(posted)
            else:
                events = []
                for item in range(rng.choice(BATCH_SIZES)):
                    common = {
                        "cadre_id": rng.choice(city.cadres),
                        "effective_on": city.today.isoformat(),
                        "source": {"system": "soak", "key": f"p{worker.number}-{batch}-{item}"},
                    }
                    if rng.random() < 0.9:
                        award = {"award": rng.choice(AWARDS), "level": rng.choice(LEVELS)}
                        events.append({"type": "merit.awarded"} | award | common)
                    else:
                        events.append(
                            {"type": "deduction.applied", "kind": "criticism", "level": "unit"} | common
                        )
                body = msgspec.json.encode({"events": events})
                posted.append(body)
                batch += 1
            response = timed(client, tally, "POST /v1/events", "POST", "/v1/events", content=body)
            if response is None or response.status_code not in (200, 201):
                continue
            results = response.json()["results"]
            if replay:
                tally.replays_wrong += response.status_code != 200 or not all(r["replayed"] for r in results)
            else:
                tally.events_new += sum(1 for r in results if not r["replayed"])


def reader(worker: Worker) -> None:
    city, tally = worker.city, worker.tally
    rng = random.Random(f"reader-{worker.number}")
    routes = [route for route, _ in READS]
    weights = [weight for _, weight in READS]
    headers = {"Authorization": f"Bearer {worker.token}"}
    with httpx.Client(base_url=worker.base, timeout=REQUEST_TIMEOUT_SECONDS, headers=headers) as client:
        while not worker.stop.is_set():
            route = rng.choices(routes, weights)[0]
            cadre = rng.choice(city.cadres)
            scope = rng.choice(["all", *(f"unit:{unit}" for unit in rng.sample(city.units, 3))])
            if route == "GET /v1/rankings":
                params = {"scope": scope, "limit": 100}
                if rng.random() < 0.5:
                    params["period"] = rng.choice(city.periods)
                timed(client, tally, route, "GET", "/v1/rankings", params=params)
            elif route == "GET /v1/cadres/{id}/history":
                timed(client, tally, route, "GET", f"/v1/cadres/{cadre}/history")
            elif route == "GET /v1/cadres/{id}/eligibility":
                timed(client, tally, route, "GET", f"/v1/cadres/{cadre}/eligibility")
            elif route == "GET /v1/eligibility":
                timed(client, tally, route, "GET", "/v1/eligibility", params={"scope": scope})
            else:
                timed(client, tally, route, "GET", "/v1/boards", params={"period": rng.choice(city.periods)})


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(seconds: float, posters: int, readers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ledger-soak-") as directory:
        url, city, tokens = prepare(Path(directory))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        process = serve(url, port, Path(directory) / "server.log")
        try:
            with httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {tokens['auditor']}"}, timeout=60.0
            ) as auditor:
                head_before = auditor.get("/v1/audit/checkpoint").json()["position"]
                stop = threading.Event()
                workers = [Worker(base, tokens["poster"], city, n, stop) for n in range(posters)]
                workers += [Worker(base, tokens["reader"], city, n, stop) for n in range(readers)]
                threads = [
                    threading.Thread(target=poster if n < posters else reader, args=(worker,))
                    for n, worker in enumerate(workers)
                ]
                samples = [(0.0, rss_kib(process.pid))]
                started = time.monotonic()
                for thread in threads:
                    thread.start()
                while (elapsed := time.monotonic() - started) < seconds:
                    stop.wait(min(MEMORY_SAMPLE_SECONDS, seconds - elapsed))
                    samples.append((time.monotonic() - started, rss_kib(process.pid)))
                stop.set()
                for thread in threads:
                    thread.join()
                elapsed = time.monotonic() - started
                samples.append((elapsed, rss_kib(process.pid)))
                verify = auditor.get("/v1/audit/verify").json()
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        total = Tally()
        for worker in workers:
            total.merge(worker.tally)
        routes: dict[str, dict[str, Any]] = {}
        for route in sorted(total.latencies):
            values = total.latencies[route]
            routes[route] = {
                "requests": len(values),
                "statuses": dict(sorted(total.statuses[route].items())),
                "p50_ms": round(percentile(values, 0.50) * 1000, 1),
                "p90_ms": round(percentile(values, 0.90) * 1000, 1),
                "p99_ms": round(percentile(values, 0.99) * 1000, 1),
                "max_ms": round(max(values) * 1000, 1),
            }
        requests = sum(route["requests"] for route in routes.values())
        rss = [kib for _, kib in samples]
        failures = sum(
            count
            for counts in total.statuses.values()
            for status, count in counts.items()
            if status.startswith(("5", "transport"))
        )
        return {
            "seconds": round(elapsed, 1),
            "posters": posters,
            "readers": readers,
            "head_before": head_before,
            "head_after": verify["verified_through"],
            "events_recorded": total.events_new,
            "events_per_second": round(total.events_new / elapsed, 1),
            "requests": requests,
            "requests_per_second": round(requests / elapsed, 1),
            "failures": failures,
            "replays_wrong": total.replays_wrong,
            "verify_ok": verify["ok"] and verify["verified_through"] == head_before + total.events_new,
            "rss_mib": {
                "start": round(rss[0] / 1024, 1),
                "end": round(rss[-1] / 1024, 1),
                "peak": round(max(rss) / 1024, 1),
                "growth_per_1000_events": round(
                    (rss[-1] - rss[0]) / 1024 / max(total.events_new / 1000, 1e-9), 2
                ),
            },
            "routes": routes,
        }


def print_report(report: dict[str, Any]) -> None:
    print(
        f"\nsoak: {report['seconds']} s, {report['posters']} posters + {report['readers']} readers, "
        f"log {report['head_before']} → {report['head_after']}"
    )
    print(
        f"throughput: {report['requests_per_second']} requests/s, {report['events_per_second']} events/s "
        f"recorded ({report['events_recorded']} events)"
    )
    rss = report["rss_mib"]
    print(
        f"server VmRSS: start {rss['start']} MiB, end {rss['end']} MiB, peak {rss['peak']} MiB "
        f"({rss['growth_per_1000_events']} MiB per 1,000 events recorded)"
    )
    print(f"{'route':<34} {'requests':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}  statuses")
    for route, figures in report["routes"].items():
        statuses = ", ".join(f"{status}: {count}" for status, count in figures["statuses"].items())
        print(
            f"{route:<34} {figures['requests']:>8} {figures['p50_ms']:>8} {figures['p90_ms']:>8} "
            f"{figures['p99_ms']:>8} {figures['max_ms']:>8}  {statuses}"
        )
    print(
        f"failures (5xx, transport): {report['failures']}; replays answered otherwise: "
        f"{report['replays_wrong']}; chain verifies and holds every new event: {report['verify_ok']}"
    )


def main() -> None:
    environment = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=float(environment("SOAK_SECONDS", SECONDS_DEFAULT)))
    parser.add_argument("--posters", type=int, default=int(environment("SOAK_POSTERS", POSTERS_DEFAULT)))
    parser.add_argument("--readers", type=int, default=int(environment("SOAK_READERS", READERS_DEFAULT)))
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    arguments = parser.parse_args()
    report = run(arguments.seconds, arguments.posters, arguments.readers)
    print_report(report)
    if arguments.json is not None:
        arguments.json.write_bytes(msgspec.json.format(msgspec.json.encode(report)) + b"\n")
    if report["failures"] or report["replays_wrong"] or not report["verify_ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
