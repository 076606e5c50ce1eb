"""B2 — HTTP ingest: `POST /v1/events` with batches of 500, one server process, loopback.

What is measured: events per second recorded through the API. `ledger serve --workers 1` runs on a ledger
that holds the policy and every cadre registered in the city's first months; a poster key for the merit
office (`ledger keys create … --role poster --system merit-office --types merit.awarded`: a poster key
posts as one source system) posts the city's merit awards of those months, in the demo's order, 500 per
request, one request at a time over one keep-alive connection. Request bodies are encoded before the clock
starts; the client reads each response in full and checks its status. So the figure includes the
server's HTTP parsing, authentication, strict decoding, `Ledger.post` (policy, chain, one SQLite commit per
request) and the encoding of the response, and the loopback round trip.

Warm-up: 10 requests (5,000 events) before the timed repetitions; then three repetitions of 100 requests
(50,000 events each, consecutive slices of the awards, into the same growing ledger); medians. Per-request
latency p50 and p99 are reported beside the rate, and the server's peak RSS. No baseline: SPEC §11 names
none.
"""

from __future__ import annotations

import time
from typing import Any, Final

import msgspec

from benchmarks.server import ServerUnavailable, check, command_used, create_key, peak_rss_of, serving
from benchmarks.workload import (
    Result,
    batches_of,
    ingest_workload,
    log,
    median,
    peak_rss_mb,
    percentile,
    registered_ledger,
    scratch_dir,
)

BATCH: Final = 500
WARM_UP_REQUESTS: Final = 10
REQUESTS_PER_REPETITION: Final = 100
REPETITIONS: Final = 3
TARGET_EVENTS_PER_SECOND: Final = 10_000
# Of every type; about three quarters are merit awards (the city of 2026-12-04 has 152,235 in its first
# 200,000, fewer than the 155,000 the requests need), so the workload is cut with room to spare.
WORKLOAD_EVENTS: Final = 250_000


def _result(**fields: Any) -> Result:
    return Result(
        id="B2",
        what="HTTP ingest, batches of 500, one server process, loopback",
        target=f"≥ {TARGET_EVENTS_PER_SECOND:,} events/s",
        unit="events/s",
        **fields,
    )


def run() -> Result:
    from ledger.domain.events import CadreRegistered, MeritAwarded

    log("B2: building the workload (the city's merit awards of its first months)")
    workload = ingest_workload(WORKLOAD_EVENTS)
    registrations = workload.registrations + [e for e in workload.events if isinstance(e, CadreRegistered)]
    awards = [event for event in workload.events if isinstance(event, MeritAwarded)]
    needed = (WARM_UP_REQUESTS + REPETITIONS * REQUESTS_PER_REPETITION) * BATCH
    if len(awards) < needed:
        raise RuntimeError(f"the workload has {len(awards)} awards, {needed} are needed")
    bodies = [msgspec.json.encode({"events": batch}) for batch in batches_of(awards[:needed], BATCH)]
    with scratch_dir("b2") as scratch:
        database = registered_ledger(registrations, scratch / "ledger.db")
        try:
            token = create_key(
                database,
                "bench-merit-office",
                "poster",
                "--system",
                "merit-office",
                "--types",
                "merit.awarded",
            )
            with serving(database, scratch) as server:
                client = server.client(token)
                log("B2: warm-up")
                for body in bodies[:WARM_UP_REQUESTS]:
                    check(*client.request("POST", "/v1/events", body))
                rates: list[float] = []
                latencies: list[float] = []
                for repetition in range(REPETITIONS):
                    first = WARM_UP_REQUESTS + repetition * REQUESTS_PER_REPETITION
                    chunk = bodies[first : first + REQUESTS_PER_REPETITION]
                    started = time.perf_counter()
                    for body in chunk:
                        before = time.perf_counter()
                        status, answer = client.request("POST", "/v1/events", body)
                        latencies.append(time.perf_counter() - before)
                        if status != 201:
                            check(status, answer, (201,))
                    seconds = time.perf_counter() - started
                    rates.append(len(chunk) * BATCH / seconds)
                    log(f"B2: repetition {repetition + 1}: {rates[-1]:,.0f} events/s")
                client.close()
                server_peak, _ = peak_rss_of(server.pid)
        except ServerUnavailable as error:
            return _result(status="not run", reason=str(error), peak_rss_mb=peak_rss_mb())
    measured = median(rates)
    return _result(
        measured=measured,
        met=measured >= TARGET_EVENTS_PER_SECOND,
        peak_rss_mb=server_peak,
        details={
            "client_peak_rss_mb": peak_rss_mb(),
            "command": command_used(),
            "events_per_repetition": REQUESTS_PER_REPETITION * BATCH,
            "repetitions_events_per_second": [round(rate) for rate in rates],
            "request_ms_p50": median(latencies) * 1000,
            "request_ms_p99": percentile(latencies, 99) * 1000,
            "body_bytes_mean": sum(map(len, bodies)) / len(bodies),
            "registered_cadres": len(registrations),
        },
    )
