"""B7 — the API process serving the city: its peak resident set (VmHWM) after a mixed load.

What is measured: `ledger serve --workers 1` on a copy of the cached city (a million events): once it is
ready (read models open), a mixed load runs over one keep-alive connection per key — for each of 40 rounds:
a whole ranking of all cadres at a random (as_of, known_at), every page of 1,000 followed; a ranking of a
random unit; a random cadre's profile, history and eligibility; every fourth round the boards, recalls and
escalations of a random quarter, a unit's promotion shortlist and a page of 1,000 events of the log; every
tenth round a post of 500 merit awards; at the end a verification of the whole chain. Then the server's
VmHWM (peak RSS) and VmRSS are read from /proc/<pid>/status (the larger over the process and any children,
should uvicorn have spawned any).

No baseline: SPEC §11 names none. The idle figure (right after ready) is reported beside the peak.
"""

from __future__ import annotations

import json
import random
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import msgspec

from benchmarks.server import (
    Client,
    ServerUnavailable,
    check,
    command_used,
    create_key,
    peak_rss_of,
    serving,
)
from benchmarks.workload import (
    TODAY,
    Result,
    city,
    first_day,
    log,
    peak_rss_mb,
    scratch_dir,
    working_copy,
)

ROUNDS: Final = 40
POST_EVERY: Final = 10
VIEWS_EVERY: Final = 4
POST_BATCH: Final = 500
TARGET_MB: Final = 500.0
SAMPLE_SEED: Final = 7


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _memory(pid: int) -> tuple[float, float]:
    values = [peak_rss_of(pid)]
    for child in _children(pid):
        try:
            values.append(peak_rss_of(child))
        except OSError:
            continue
    return max(value[0] for value in values), max(value[1] for value in values)


def _whole_ranking(client: Client, query: str) -> int:
    document = check(*client.request("GET", f"/v1/rankings?{query}&limit=1000"), (200,))
    entries = len(document["entries"])
    while document["next_cursor"]:
        cursor = quote(document["next_cursor"])
        document = check(*client.request("GET", f"/v1/rankings?cursor={cursor}&limit=1000"), (200,))
        entries += len(document["entries"])
    return entries


def _load(reader: Client, poster: Client, head: int, first_day: date) -> dict[str, Any]:
    from ledger.domain.events import MeritAwarded, Source

    rng = random.Random(SAMPLE_SEED)
    today = check(*reader.request("GET", f"/v1/rankings?scope=all&as_of={TODAY}&limit=1000"), (200,))
    cadres = [entry["cadre_id"] for entry in today["entries"]]
    units = sorted({entry["unit_id"] for entry in today["entries"]})
    requests = posted = 0
    started = time.perf_counter()
    for round_ in range(ROUNDS):
        as_of = first_day + timedelta(days=rng.randint(0, (TODAY - first_day).days))
        known_at = rng.randint(1, head)
        _whole_ranking(reader, f"scope=all&as_of={as_of}&known_at={known_at}")
        check(*reader.request("GET", f"/v1/rankings?scope=unit:{rng.choice(units)}&as_of={as_of}"), (200,))
        cadre_id = rng.choice(cadres)
        for path in ("", "/history?limit=1000", "/eligibility"):
            check(*reader.request("GET", f"/v1/cadres/{cadre_id}{path}"), (200,))
        requests += 6
        if round_ % VIEWS_EVERY == 0:
            year = rng.randint(first_day.year + 1, TODAY.year - 1)
            period = f"{year}Q{rng.randint(1, 4)}"
            for path in (
                f"/v1/boards?period={period}&scope=all",
                f"/v1/recalls?period={period}&scope=all",
                f"/v1/escalations?period={period}&scope=all",
                f"/v1/eligibility?scope=unit:{rng.choice(units)}",
                f"/v1/events?after={rng.randint(0, head - 1000)}&limit=1000",
            ):
                check(*reader.request("GET", path), (200,))
            requests += 5
        if round_ % POST_EVERY == 0:
            batch = [
                MeritAwarded(
                    cadre_id=rng.choice(cadres),
                    effective_on=TODAY,
                    source=Source(system="merit-office", key=f"bench-b7-{posted + i}"),
                    award="citation",
                    level="unit",
                )
                for i in range(POST_BATCH)
            ]
            check(*poster.request("POST", "/v1/events", msgspec.json.encode({"events": batch})), (201,))
            posted += POST_BATCH
            requests += 1
    verify = check(*reader.request("GET", "/v1/audit/verify"), (200,))
    if not verify["ok"]:
        raise RuntimeError(f"the served ledger does not verify: {json.dumps(verify)}")
    return {
        "requests": requests + 1,
        "events_posted": posted,
        "load_seconds": time.perf_counter() - started,
        "verified_through": verify["verified_through"],
    }


def _result(**fields: Any) -> Result:
    return Result(
        id="B7",
        what="API process serving the city, after a mixed load",
        target=f"peak RSS ≤ {TARGET_MB:.0f} MB",
        unit="MB VmHWM",
        higher_is_better=False,
        **fields,
    )


def run() -> Result:
    source, about = city("1m")
    with scratch_dir("b7") as scratch:
        path = working_copy(source, scratch / "ledger.db")
        try:
            reader_token = create_key(path, "bench-admin", "admin")
            poster_token = create_key(
                path, "bench-merit-office", "poster", "--system", "merit-office", "--types", "merit.awarded"
            )
            with serving(path, scratch) as server:
                idle_peak, idle_rss = _memory(server.pid)
                reader, poster = server.client(reader_token), server.client(poster_token)
                log(f"B7: mixed load, {ROUNDS} rounds")
                load = _load(reader, poster, int(about["events"]), first_day(source))
                reader.close()
                poster.close()
                peak, rss = _memory(server.pid)
        except ServerUnavailable as error:
            return _result(status="not run", reason=str(error), peak_rss_mb=peak_rss_mb())
    return _result(
        measured=peak,
        met=peak <= TARGET_MB,
        peak_rss_mb=peak,
        details={
            "command": command_used(),
            "idle_peak_mb": idle_peak,
            "idle_rss_mb": idle_rss,
            "rss_after_load_mb": rss,
            "events": about["events"],
            **load,
        },
    )
