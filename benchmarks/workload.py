"""The workload every benchmark shares: the demo city, cached on disk, and the small tools to measure it.

The city is `ledger demo --scale city` with a fixed seed (7, the CLI's default) and a fixed `today`
(2026-06-30), generated through `Ledger.post` exactly as the CLI does, then kept under `benchmarks/.cache/`
(ignored by git; `LEDGER_BENCH_CACHE` moves it) so that later runs reuse it:

- `1m`   — the city: 82 units, 3,900 cadres at the start (4,250 registered in all), about a million events
  over three years (80 s to build on an idle 2-core machine, three minutes on a busy one);
- `100k` — the first 100,000 positions of the same log (a copy with the later rows deleted: a valid prefix);
- `10m`  — the same city with about ten times the small awards (a scale `city-x10` registered here for the
  benchmarks only), about ten million events; only with `--growth-10m`: it takes about half an hour.

A cache file is named after scale, seed, today and a digest of the stored format taken from what the code
does (see `format_digest`), so that a refactoring keeps the cache and a change of format builds a new one.
Cached files are checkpointed into one file (journal mode DELETE) and never opened by a benchmark: each
benchmark works on a copy (`working_copy`), so a benchmark that writes cannot spoil the next one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

__all__ = [
    "CACHE_DIR",
    "ROOT",
    "SEED",
    "SIZES",
    "TODAY",
    "IngestWorkload",
    "Result",
    "Size",
    "batches_of",
    "cached_city",
    "city",
    "clock",
    "first_day",
    "format_digest",
    "ingest_workload",
    "log",
    "machine",
    "median",
    "peak_rss_mb",
    "percentile",
    "postgres_base",
    "postgres_schema",
    "registered_ledger",
    "scratch_dir",
    "timed",
    "url_of",
    "working_copy",
]

ROOT: Final = Path(__file__).resolve().parent.parent
CACHE_DIR: Final = Path(os.environ.get("LEDGER_BENCH_CACHE", ROOT / "benchmarks" / ".cache"))
SEED: Final = 7
TODAY: Final = date(2026, 6, 30)
PREFIX_EVENTS: Final = 100_000
# Small awards per cadre and month in the `city-x10` scale: the city has 5.6 and about 790k of them among
# its million events; 70 gives about ten million events for the same 3,900 cadres.
X10_AWARDS_PER_CADRE_MONTH: Final = 70.0

Size = Literal["100k", "1m", "10m"]
SIZES: Final[tuple[Size, ...]] = ("100k", "1m", "10m")

# Bump to rebuild every cache after a change to how this module builds one.
CACHE_LAYOUT: Final = 1
SAMPLE_BATCHES: Final = 4  # the initial registrations and the first month's batches, for the digest
DIGEST_ENVIRONMENT: Final = "LEDGER_BENCH_FORMAT_DIGEST"


def clock() -> datetime:
    """The benchmarks' fixed clock: noon UTC of TODAY (evening in Asia/Shanghai, the same date)."""
    return datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=UTC)


def log(message: str) -> None:
    """Progress for the person waiting (stderr: stdout carries the results)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def url_of(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


# Measuring.


class Result(msgspec.Struct, kw_only=True):
    """One benchmark's line of the table, with everything behind it in `details`."""

    id: str
    what: str
    target: str
    measured: float | None = None
    unit: str = ""
    # True for rates (events/s), False for times and sizes (ms, MB).
    higher_is_better: bool = True
    # (what, value in `unit`), measured in the same run.
    baselines: list[tuple[str, float]] = msgspec.field(default_factory=list)
    met: bool | None = None
    status: str = "ok"  # or "not run"
    reason: str = ""
    peak_rss_mb: float | None = None
    details: dict[str, Any] = msgspec.field(default_factory=dict)

    def ratio(self, baseline: float) -> float | None:
        """How many times better than `baseline` (above 1: the ledger is faster)."""
        if self.measured is None or not baseline or not self.measured:
            return None
        return self.measured / baseline if self.higher_is_better else baseline / self.measured


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in 0–100): a value that was measured, never an interpolation."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 100))
    return float(ordered[int(rank) - 1])


def peak_rss_mb() -> float:
    """This process's peak resident set so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


# Files.


@contextmanager
def scratch_dir(name: str) -> Iterator[Path]:
    """A temporary directory beside the cache (the same disk as the cached ledgers), removed afterwards."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=CACHE_DIR))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def working_copy(source: Path, target: Path) -> Path:
    """Copy a cached ledger to `target` for a benchmark to open (any -wal/-shm of an older copy go first:
    SQLite would otherwise replay a stale log into the fresh copy)."""
    _remove_database(target)
    shutil.copyfile(source, target)
    return target


def _seal(path: Path) -> None:
    """Checkpoint a ledger into its main file and leave it in journal mode DELETE: one self-contained file."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("PRAGMA journal_mode=DELETE")
    finally:
        connection.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# The stored format's digest.


def _stored_sample(directory: Path) -> tuple[str, list[bytes]]:
    """The schema an empty ledger creates, and the stored bytes of the city's first batches posted into it
    (event ids blanked: they are random)."""
    from ledger import Ledger
    from ledger.demo import POSTED_BY, generate_city

    path = directory / "sample.db"
    with Ledger.open(url_of(path), clock=clock) as ledger:
        for number, batch in enumerate(generate_city(seed=SEED, scale="city", today=TODAY)):
            if number == SAMPLE_BATCHES:
                break
            if batch.events:
                ledger.post(batch.events, posted_by=POSTED_BY)
        states = [state for _position, state in ledger.stored(limit=100_000)]
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name"
        ).fetchall()
    finally:
        connection.close()
    schema = "\n".join(f"{kind} {name}: {sql}" for kind, name, sql in rows)
    blank = re.compile(rb'"event_id":"[0-9a-f-]{36}"')
    return schema, [blank.sub(b'"event_id":""', state) for state in states]


def format_digest() -> str:
    """A digest of what decides a cached ledger's bytes besides seed, scale and today — taken from what
    the code does, not from its text, so that a refactoring keeps the cache and a change of format does not:

    - the whole stream of batches the demo generates for the city (client fields only: deterministic);
    - the schema an empty ledger creates and the stored bytes of the city's first batches as the ledger
      records them (the mapper, the policy's points, the server fields);
    - the chain's canonical bytes and hash of a fixed input.

    Takes a few seconds: the runner computes it once and hands it to each benchmark's process.
    """
    cached = os.environ.get(DIGEST_ENVIRONMENT)
    if cached:
        return cached
    from ledger.demo import generate_city
    from ledger.integrity.chain import canonical_bytes, chain_hash

    digest = hashlib.sha256(f"layout {CACHE_LAYOUT}\n".encode())
    encode = msgspec.json.Encoder().encode
    for batch in generate_city(seed=SEED, scale="city", today=TODAY):
        digest.update(encode(batch))
    with tempfile.TemporaryDirectory() as directory:
        schema, states = _stored_sample(Path(directory))
    digest.update(schema.encode())
    for state in states:
        digest.update(state)
    canonical = canonical_bytes(1, "2026-06-30T12:00:00.000000Z", states[-1])
    digest.update(canonical + chain_hash(bytes(32), canonical))
    value = digest.hexdigest()[:12]
    os.environ[DIGEST_ENVIRONMENT] = value
    return value


# The city.


def _register_x10_scale() -> None:
    """Add the `city-x10` scale to the demo's table (in this process only: the benchmarks' own scale)."""
    from ledger.demo import SCALES

    city = SCALES["city"]
    if "city-x10" not in SCALES:
        SCALES["city-x10"] = msgspec.structs.replace(
            city, awards_per_cadre_month=X10_AWARDS_PER_CADRE_MONTH, expected_events=10_000_000
        )


def _generate(path: Path, scale: str) -> dict[str, Any]:
    """Post a demo city into a new ledger at `path` through `Ledger.post`, as `ledger demo` does."""
    from ledger import Ledger
    from ledger.demo import run_demo

    if scale == "city-x10":
        _register_x10_scale()
    reported = [0, time.perf_counter()]

    def progress(count: int) -> None:
        reported[0] += count
        if time.perf_counter() - reported[1] > 30:
            reported[1] = time.perf_counter()
            log(f"  … {reported[0]:,} events posted")

    started = time.perf_counter()
    with Ledger.open(url_of(path), clock=clock) as ledger:
        summary = run_demo(ledger, seed=SEED, scale=scale, today=TODAY, progress=progress)
        head = ledger.head()
    seconds = time.perf_counter() - started
    _seal(path)
    return {
        "scale": scale,
        "seed": SEED,
        "today": TODAY.isoformat(),
        "events": head,
        "cadres": summary.cadres,
        "events_posted": summary.events_posted,
        "batches": summary.batches,
        "counts": summary.counts,
        "generated_seconds": round(seconds, 1),
        "generated_on": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _prefix(source: Path, target: Path, events: int) -> dict[str, Any]:
    """A copy of `source` holding only its first `events` positions (event and chain rows).

    The read models' tables and the writer's persisted state are dropped: they are derived from the whole
    log (and verified, so left behind they would only cost a rebuild), and a cached city opened in place —
    it should not be — carries them."""
    working_copy(source, target)
    connection = sqlite3.connect(target)
    try:
        with connection:
            connection.execute("DELETE FROM stored_events WHERE rowid > ?", (events,))
            connection.execute("DELETE FROM ledger_chain WHERE position > ?", (events,))
            derived = connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND (name LIKE 'projection%' OR name = 'ledger_writer_state')"
            ).fetchall()
            for (name,) in derived:
                connection.execute(f'DROP TABLE "{name}"')
        connection.execute("VACUUM")
        head = connection.execute("SELECT MAX(position) FROM ledger_chain").fetchone()[0]
        cadres = connection.execute(
            "SELECT COUNT(DISTINCT originator_id) FROM stored_events WHERE originator_id != '$policy'"
        ).fetchone()[0]
    finally:
        connection.close()
    _seal(target)
    return {"prefix_of": source.name, "events": head, "cadres": cadres}


def _city_name(size: Size) -> tuple[str, str]:
    """(scale, cache file name without suffix) of the city of `size` for today's stored format."""
    scale = "city-x10" if size == "10m" else "city"
    name = f"{scale}-seed{SEED}-{TODAY.isoformat()}-{format_digest()}"
    if size == "100k":
        name += f"-prefix{PREFIX_EVENTS}"
    return scale, name


def cached_city(size: Size) -> tuple[Path, dict[str, Any]] | None:
    """The cached ledger of `size` if it was built already, else None: never builds one (the 10M city
    takes half an hour)."""
    _scale, name = _city_name(size)
    path, about = CACHE_DIR / f"{name}.db", CACHE_DIR / f"{name}.json"
    if path.exists() and about.exists():
        return path, json.loads(about.read_text())
    return None


def city(size: Size = "1m") -> tuple[Path, dict[str, Any]]:
    """The cached ledger of `size` and what is known about it; built on first use (see the module doc)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    digest = format_digest()
    scale, name = _city_name(size)
    path = CACHE_DIR / f"{name}.db"
    about = CACHE_DIR / f"{name}.json"
    cached = cached_city(size)
    if cached is not None:
        return cached
    building = CACHE_DIR / f"building-{name}.db"
    _remove_database(building)
    started = time.perf_counter()
    if size == "100k":
        source, _ = city("1m")
        log(f"cutting the first {PREFIX_EVENTS:,} positions of the city into {path.name}")
        info = _prefix(source, building, PREFIX_EVENTS)
    else:
        log(f"generating the {scale} city (seed {SEED}, today {TODAY}) into {path.name}; this takes a while")
        info = _generate(building, scale)
    info["format_digest"] = digest
    info["bytes"] = building.stat().st_size
    # A half-built file never looks like a cache: it is renamed only when complete.
    building.rename(path)
    about.write_text(json.dumps(info, indent=2, sort_keys=True))
    log(f"built {path.name}: {info['events']:,} events in {time.perf_counter() - started:.0f} s")
    return path, info


# The ingest workload (B1, B2): the city's events as the demo posts them, cut into fixed-size batches.


class IngestWorkload(msgspec.Struct, kw_only=True):
    """The city's initial registrations, and the events that follow them in posting order.

    `events` leaves out reversals (they name their target by an id that only the ledger that recorded the
    target knows) and the quarterly accruals (the ledger computes those itself); every other event of the
    first months of the city is there, in the order the demo posts it.
    """

    registrations: list[Any]
    events: list[Any]


def ingest_workload(count: int) -> IngestWorkload:
    """The registrations and the first `count` events after them of the city (seed, today fixed)."""
    from ledger.demo import generate_city

    registrations: list[Any] = []
    events: list[Any] = []
    for batch in generate_city(seed=SEED, scale="city", today=TODAY):
        if batch.kind == "registrations":
            registrations.extend(batch.events)
            continue
        if batch.accrue is not None:
            continue
        events.extend(batch.events)
        if len(events) >= count:
            break
    return IngestWorkload(registrations=registrations, events=events[:count])


def registered_ledger(registrations: list[Any], path: Path) -> Path:
    """A new ledger at `path` holding the policy and `registrations`, sealed (one file)."""
    from ledger import Ledger

    _remove_database(path)
    with Ledger.open(url_of(path), clock=clock) as ledger:
        for start in range(0, len(registrations), 1_000):
            ledger.post(registrations[start : start + 1_000], posted_by="bench")
    _seal(path)
    return path


def batches_of(events: list[Any], size: int) -> list[list[Any]]:
    return [events[start : start + size] for start in range(0, len(events), size)]


def first_day(path: Path) -> date:
    """The earliest `effective_on` of a cadre event in a cached ledger (the first registrations)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        text = connection.execute(
            "SELECT MIN(state ->> '$.effective_on') FROM stored_events "
            "WHERE rowid <= 10000 AND originator_id != '$policy'"
        ).fetchone()[0]
    finally:
        connection.close()
    return date.fromisoformat(text)


# PostgreSQL: benchmarks that need a server skip with the reason when none answers.

POSTGRES_ENVIRONMENT: Final = ("LEDGER_BENCH_POSTGRES_URL", "LEDGER_TEST_POSTGRES_URL")


def postgres_base() -> tuple[str | None, str]:
    """(the base URL of a reachable PostgreSQL server, ""), or (None, why there is none)."""
    url = next((os.environ[name] for name in POSTGRES_ENVIRONMENT if os.environ.get(name)), None)
    if url is None:
        return None, f"no PostgreSQL server: set {' or '.join(POSTGRES_ENVIRONMENT)}"
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed (extra `postgres`)"
    try:
        with psycopg.connect(url, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return None, f"PostgreSQL at {url} is not reachable: {error}"
    return url, ""


@contextmanager
def postgres_schema(base: str, prefix: str) -> Iterator[str]:
    """The URL of a new schema on the server at `base` (the ledger creates it on open), dropped after."""
    import uuid

    import psycopg
    from psycopg import sql

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}schema={schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


# The machine, for the report.


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, memory, disk, load, Python and library versions."""
    import platform
    from importlib.metadata import version

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    disk = shutil.disk_usage(CACHE_DIR if CACHE_DIR.exists() else ROOT)
    packages = ("cadre-ledger", "eventsourcing", "msgspec", "numpy", "SQLAlchemy", "litestar", "uvicorn")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "disk_total_gb": round(disk.total / 1e9),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "versions": {name: version(name) for name in packages},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
