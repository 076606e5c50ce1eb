"""B10 — writers that add up: N writer processes on one ledger against one writer, SQLite and PostgreSQL.

What is measured. SQLite: a copy of the city's first 100,000 events (the cached prefix: ~3,900 cadres with
~25 events of history each, so that reloading a cadre's stream costs what it costs in a real ledger), a
fresh copy per configuration. PostgreSQL: a new schema per configuration holding the policy and the city's
3,900 initial registrations (loading the prefix into PostgreSQL per configuration would take minutes);
skipped, with the reason, when no server answers. N writer processes (1, 2, 4; see `benchmarks.writers`)
each open the ledger, fold it, post one warm-up batch, wait at a common start, then post their share of
`EVENTS` events — merit awards, one in ten a deduction, effective `TODAY`, to cadres active in the ledger —
in batches cycling through 100, 250, 500 and 1,000 events, one `Ledger.post` each:

- disjoint: writer i posts only to the cadres i, i + N, i + 2N, … (no two writers share a stream);
- overlapping: every writer draws its cadres from all of them (concurrent batches share streams).

Reported per configuration: the events/s of all writers together (their events over the time from the
common start to the last batch's end) beside one writer's in the same run (the mean of a one-writer run
before and one after the others: the baseline drifts with the neighbours' load); target ≥ 0.9×. Each
batch's latency beside the median latency of the same size alone (the one-writer runs): the slowdown's
p50, p99 and max; target ≤ 3×. Retries (attempts beyond the first per post), lost races and the `ledger`
logger's records where the code shows them (see `benchmarks.writers`). A batch that fails (the log kept
moving, the lock wait ran out) is counted and its writer goes on.

HTTP: `ledger serve --workers 2` with two posting clients (threads, one keep-alive connection each, 500
merit awards per request, bodies encoded beforehand; a 503 is asked again after 50 ms and counted) against
`--workers 1` with two clients (before and after) and with one, on a copy of the same 100k prefix.

Bounded: a writer starts no batch after `DEADLINE_SECONDS`; one still running `GRACE_SECONDS` later is
terminated (its finished batches count; the line says so). Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from pathlib import Path
from typing import Any, Final

import msgspec

from benchmarks.server import (
    Client,
    ServerUnavailable,
    check,
    command_used,
    create_key,
    memory_of,
    serving,
    worker_of,
    worker_pids,
)
from benchmarks.workload import (
    TODAY,
    Result,
    city,
    clock,
    ingest_workload,
    log,
    median,
    percentile,
    postgres_base,
    postgres_schema,
    scratch_dir,
    url_of,
    working_copy,
)
from benchmarks.writers import BATCH_SIZES, run_writers

WRITERS: Final = (2, 4)
MODES: Final = ("disjoint", "overlapping")
# Events per configuration, shared among its writers: whole cycles of BATCH_SIZES (1,850 events) for each
# of 1, 2 or 4 writers, so that every batch has a size measured alone.
EVENTS: Final = {"sqlite": 4 * 5 * sum(BATCH_SIZES), "postgres": 4 * 2 * sum(BATCH_SIZES)}
DEADLINE_SECONDS: Final = 20.0
GRACE_SECONDS: Final = 30.0
TARGET_RATIO: Final = 0.9
TARGET_SLOWDOWN: Final = 3.0
HTTP_BATCH: Final = 500
HTTP_REQUESTS_PER_CLIENT: Final = 40
WORKER_ATTEMPTS: Final = 30  # new connections tried for a client to land on a worker of its own
SEED: Final = 11


# One store: one writer, N writers, one writer again.


def _latency(runs: list[dict[str, Any]], alone: dict[int, float]) -> dict[str, Any]:
    latencies = [seconds for run in runs for _size, seconds, _ in run["batches"]]
    slowdown = [seconds / alone[size] for run in runs for size, seconds, _ in run["batches"] if size in alone]
    retries = [max(0, used - 1) for run in runs for *_, used in run["batches"] if used is not None]
    return {
        "batch_ms_p50": median(latencies) * 1000 if latencies else None,
        "batch_ms_p99": percentile(latencies, 99) * 1000 if latencies else None,
        "batch_ms_max": max(latencies) * 1000 if latencies else None,
        "slowdown_p50": median(slowdown) if slowdown else None,
        "slowdown_p99": percentile(slowdown, 99) if slowdown else None,
        "slowdown_max": max(slowdown) if slowdown else None,
        # None: attempts are not observable (no `_plan` or `_post_once` to count).
        "retries": sum(retries) if retries else None,
        "retries_max_per_batch": max(retries, default=0),
    }


def _store(store: str, label: str, url_for: Any, cadres: list[str]) -> list[Result]:
    """One writer, then 2 and 4 in each mode, then one writer again, on fresh ledgers from `url_for`."""
    count = EVENTS[store]
    runs: dict[tuple[int, str], dict[str, Any]] = {}

    def run(writers: int, mode: str, tag: str) -> dict[str, Any]:
        with url_for() as url:
            result = run_writers(
                url,
                cadres,
                writers=writers,
                mode=mode,
                count=count,
                tag=tag,
                deadline=DEADLINE_SECONDS,
                grace=GRACE_SECONDS,
            )
        log(
            f"B10 {store}: {writers} writer(s), {mode}: {result['events_per_second']:,.0f} events/s "
            f"({result['events']:,} events in {result['seconds']:.1f} s, attempts {result['attempts']}, "
            f"failed {dict(result['failed'])})"
        )
        return result

    first = run(1, "disjoint", "first")
    for writers in WRITERS:
        for mode in MODES:
            runs[(writers, mode)] = run(writers, mode, f"{writers}-{mode}")
    last = run(1, "disjoint", "last")
    one = (first["events_per_second"] + last["events_per_second"]) / 2
    sizes: dict[int, list[float]] = {}
    for size, seconds, _ in first["batches"] + last["batches"]:
        sizes.setdefault(size, []).append(seconds)
    alone = {size: median(values) for size, values in sizes.items()}
    alone_latency = _latency([first, last], alone)
    results = []
    for (writers, mode), result in runs.items():
        latency = _latency([result], alone)
        ratio = result["events_per_second"] / one if one else 0.0
        met = ratio >= TARGET_RATIO and (latency["slowdown_max"] or 0.0) <= TARGET_SLOWDOWN
        slowdown = [latency[f"slowdown_{key}"] or 0.0 for key in ("p50", "p99", "max")]
        note = (
            f"; batch slowdown p50 {slowdown[0]:.1f}×, p99 {slowdown[1]:.1f}×, max {slowdown[2]:.1f}×; "
            f"retries {latency['retries'] if latency['retries'] is not None else 'not observable'}"
        )
        if result["failed"] or result["terminated"] or result["timed_out"]:
            note += f"; failed {sum(result['failed'].values())}, timed out {result['timed_out']}"
        results.append(
            Result(
                id="B10",
                what=f"{writers} writer processes, {mode} cadres, {label}, batches of 100–1,000",
                target=f"≥ {TARGET_RATIO}× one writer; each batch ≤ {TARGET_SLOWDOWN:.0f}× alone",
                measured=result["events_per_second"],
                unit="events/s",
                baselines=[("one writer, same run (mean of the runs before and after)", one)],
                met=met,
                peak_rss_mb=result["writer_peak_rss_mb"],  # the largest writer's
                details={
                    "note": note,
                    "store": store,
                    "events_per_configuration": count,
                    "one_writer_first": first["events_per_second"],
                    "one_writer_last": last["events_per_second"],
                    "alone_batch_seconds_by_size": alone,
                    "alone": alone_latency,
                    **latency,
                    **{key: value for key, value in result.items() if key != "batches"},
                    "failed": dict(result["failed"]),
                },
            )
        )
    return results


# HTTP: serve --workers 2 with two posting clients, against one worker.


def _post_all(client: Any, bodies: list[bytes], deadline: float, out: list[Any]) -> None:
    for body in bodies:
        if time.monotonic() > deadline:
            return
        began = time.monotonic()
        busy = 0
        while True:
            status, answer = client.request("POST", "/v1/events", body)
            if status != 503 or time.monotonic() > deadline:
                break
            busy += 1  # a worker still opening, or the lock busy: the client waits and asks again
            time.sleep(0.05)
        out.append((time.monotonic() - began, status, busy))
        if status != 201:
            check(status, answer, (201,))


def _bodies(rng: random.Random, cadres: list[str], tag: str, clients: int) -> list[list[bytes]]:
    """Each client's request bodies: HTTP_REQUESTS_PER_CLIENT posts of HTTP_BATCH new merit awards."""
    from ledger.domain.events import MeritAwarded, Source

    def award(key: str) -> MeritAwarded:
        source = Source(system="merit-office", key=key)
        return MeritAwarded(
            cadre_id=rng.choice(cadres), effective_on=TODAY, source=source, award="citation", level="unit"
        )

    return [
        [
            msgspec.json.encode({"events": [award(f"b10-{tag}-{c}-{r}-{i}") for i in range(HTTP_BATCH)]})
            for r in range(HTTP_REQUESTS_PER_CLIENT)
        ]
        for c in range(clients)
    ]


def _connect(server: Any, token: str, clients: int) -> tuple[list[Client], bool | None]:
    """One connection per client, each served by a worker of its own when there are enough workers (the
    kernel hands a new connection to any worker: reconnect until they differ); whether they do (None: fewer
    workers than clients)."""
    connections: list[Client] = []
    for _ in range(clients):
        for _attempt in range(WORKER_ATTEMPTS):
            connection = server.client(token)
            status, body = connection.request("GET", "/health/live")
            check(status, body, (200,))
            taken = {worker_of(other, server) for other in connections}
            if server.workers < clients or worker_of(connection, server) not in taken:
                break
            connection.close()
        connections.append(connection)
    if server.workers < clients:
        return connections, None
    return connections, len({worker_of(connection, server) for connection in connections}) == clients


def _http(template: Path, scratch: Path, cadres: list[str]) -> Result:
    database = working_copy(template, scratch / "http.db")
    token = create_key(
        database, "bench-merit-office", "poster", "--system", "merit-office", "--types", "merit.awarded"
    )
    rng = random.Random(SEED)
    rates: dict[str, float] = {}
    details: dict[str, Any] = {"command": command_used()}
    for workers, clients in ((1, 1), (1, 2), (2, 2), (1, 2)):
        label = f"{workers}w-{clients}c"
        key = label if label not in rates else f"{label}-again"
        bodies = _bodies(rng, cadres, key, clients)
        with serving(database, scratch, workers=workers) as server:
            connections, distinct = _connect(server, token, clients)
            for connection, own in zip(connections, bodies, strict=True):  # warm: every worker has posted
                _post_all(connection, own[:1], time.monotonic() + 60, [])
            outcomes: list[list[Any]] = [[] for _ in range(clients)]
            deadline = time.monotonic() + DEADLINE_SECONDS
            threads = [
                threading.Thread(
                    target=_post_all, args=(connections[c], bodies[c][1:], deadline, outcomes[c])
                )
                for c in range(clients)
            ]
            began = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(DEADLINE_SECONDS + GRACE_SECONDS)
            seconds = time.monotonic() - began
            for connection in connections:
                connection.close()
            server_peak = max(memory_of(pid)["VmHWM"] for pid in worker_pids(server))
        done = [item for items in outcomes for item in items if item[1] == 201]
        rate = len(done) * HTTP_BATCH / seconds
        rates[key] = rate
        details[key] = {
            "events_per_second": rate,
            "requests": len(done),
            "request_ms_p50": median([item[0] for item in done]) * 1000 if done else None,
            "request_ms_max": max((item[0] for item in done), default=0.0) * 1000,
            "busy_answers": sum(item[2] for item in done),
            "clients_on_distinct_workers": distinct,
            "worker_peak_mb": server_peak,
        }
        log(
            f"B10 HTTP: --workers {workers}, {clients} client(s): {rate:,.0f} events/s "
            f"(max request {details[key]['request_ms_max']:.0f} ms; clients on distinct workers: {distinct})"
        )
    one_worker = (rates["1w-2c"] + rates["1w-2c-again"]) / 2
    measured = rates["2w-2c"]
    return Result(
        id="B10",
        what="HTTP: `ledger serve --workers 2`, two posting clients, 500 per request",
        target=f"≥ {TARGET_RATIO}× one worker",
        measured=measured,
        unit="events/s",
        baselines=[
            ("--workers 1, two clients (mean of the runs before and after)", one_worker),
            ("--workers 1, one client", rates["1w-1c"]),
        ],
        met=measured >= TARGET_RATIO * one_worker,
        peak_rss_mb=details["2w-2c"]["worker_peak_mb"],  # the largest worker's VmHWM
        details={
            "note": f"; max request {details['2w-2c']['request_ms_max']:.0f} ms (one worker, two clients: "
            f"{details['1w-2c']['request_ms_max']:.0f} ms)"
            + ("" if details["2w-2c"]["clients_on_distinct_workers"] else "; both clients on one worker"),
            **details,
        },
    )


def _not_run(what: str, reason: str) -> Result:
    return Result(
        id="B10", what=what, target=f"≥ {TARGET_RATIO}× one writer", status="not run", reason=reason
    )


def _active_cadres(path: Path) -> list[str]:
    """The cadres registered and not departed in the ledger at `path` (read through the library)."""
    from ledger import Ledger
    from ledger.domain.events import CadreDeparted, CadreRegistered

    registered: set[str] = set()
    departed: set[str] = set()
    with Ledger.open(url_of(path), clock=clock, create=False) as ledger:
        after = 0
        while page := ledger.records(after=after, limit=10_000):
            for _position, event in page:
                if isinstance(event, CadreRegistered):
                    registered.add(event.cadre_id)
                elif isinstance(event, CadreDeparted):
                    departed.add(event.cadre_id)
            after = page[-1][0]
    return sorted(registered - departed)


def run() -> list[Result]:
    from contextlib import contextmanager

    from ledger import Ledger

    prefix, about = city("100k")
    workload = ingest_workload(1)
    results: list[Result] = []
    with scratch_dir("b10") as scratch:
        template = working_copy(prefix, scratch / "prefix.db")
        cadres = _active_cadres(template)
        copies = itertools.count()
        log(f"B10: SQLite and HTTP on the city's first {about['events']:,} events ({len(cadres):,} cadres)")

        @contextmanager
        def sqlite_copy() -> Any:
            yield url_of(working_copy(template, scratch / f"writers-{next(copies)}.db"))

        label = f"SQLite, the city's first {about['events']:,} events"
        results.extend(_store("sqlite", label, sqlite_copy, cadres))

        base, reason = postgres_base()
        if base is None:
            results.append(_not_run("N writer processes, PostgreSQL", reason))
        else:
            registrations = workload.registrations

            @contextmanager
            def postgres_ledger() -> Any:
                with postgres_schema(base, "bench_b10") as url:
                    with Ledger.open(url, clock=clock) as ledger:
                        for first in range(0, len(registrations), 1_000):
                            ledger.post(registrations[first : first + 1_000], posted_by="bench")
                    yield url

            label = f"PostgreSQL, {len(registrations):,} cadres registered"
            initial = [registration.cadre_id for registration in registrations]
            results.extend(_store("postgres", label, postgres_ledger, initial))
        try:
            results.append(_http(template, scratch, cadres))
        except ServerUnavailable as error:
            results.append(_not_run("HTTP: `ledger serve --workers 2`, two posting clients", str(error)))
    return results
