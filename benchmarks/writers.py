"""Running N writer processes on one ledger, for B10: each posts its batches from a common start.

Each writer is a process of its own (multiprocessing's spawn: no state inherited from the parent): it opens
the ledger, folds it (`load_all`), posts one small warm-up batch, reports ready, waits for the common start
and posts its batches, reporting each one (size, start, seconds, attempts, error) on a queue as it ends,
so that what a writer did is known even if it has to be terminated. Lost races are counted where the code
shows them: calls of the writer's `_plan` (one per decision; `_post_once`, one per attempt, in the
writer before it) with the exception of each failed one, the writer's own `lost_races` counter where it
keeps one, and every record of the `ledger` logger at INFO or above, by message.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import queue
import random
import resource
import time
from collections import Counter
from typing import Any, Final

from benchmarks.workload import TODAY, clock

__all__ = ["BATCH_SIZES", "run_writers"]

BATCH_SIZES: Final = (100, 250, 500, 1_000)
DEDUCTION_EVERY: Final = 10
READY_TIMEOUT_SECONDS: Final = 120.0
WARM_UP_EVENTS: Final = 10
SEED: Final = 11


def _events(job: dict[str, Any], index: int, count: int, tag: str) -> list[list[Any]]:
    """Writer `index`'s batches of `job`: `count` events in sizes cycling through BATCH_SIZES."""
    from ledger.domain.events import DeductionApplied, MeritAwarded, Source

    rng = random.Random(f"{SEED}-{tag}-{index}")
    cadres = job["cadres"]
    pool = cadres[index :: job["writers"]] if job["mode"] == "disjoint" else cadres
    batches: list[list[Any]] = []
    made = 0
    for cycled in itertools.cycle(BATCH_SIZES):
        size = min(cycled, count - made)
        if size <= 0:
            break
        batch: list[Any] = []
        for number in range(made, made + size):
            source = Source(system="bench-writers", key=f"{tag}-w{index}-{number}")
            cadre_id = rng.choice(pool)
            if number % DEDUCTION_EVERY == DEDUCTION_EVERY - 1:
                batch.append(
                    DeductionApplied(
                        cadre_id=cadre_id, effective_on=TODAY, source=source, kind="criticism", level="unit"
                    )
                )
            else:
                batch.append(
                    MeritAwarded(
                        cadre_id=cadre_id, effective_on=TODAY, source=source, award="citation", level="unit"
                    )
                )
        batches.append(batch)
        made += size
    return batches


class _Records(logging.Handler):
    """Counts the `ledger` logger's records by level and message template (lost races, retries, …)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.levelname}: {str(record.msg)[:80]}"] += 1


def _count_attempts() -> Counter[str] | None:
    """Wrap the writer's `_plan` or `_post_once` (in `ledger.writer.Writer`, or in `Ledger` before the
    writer had its own module) to count decisions and why they failed; None when there is no such method
    (then they are not observable here)."""
    import importlib

    owner: Any = None
    for module, name in (("ledger.writer", "Writer"), ("ledger.ledger", "Ledger")):
        try:
            candidate = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        # `_plan` decides a batch (once per decision; a decision that still holds after a lost append is
        # not made again); `_post_once` decided and appended in one call (the writer before that).
        method = next((m for m in ("_plan", "_post_once") if m in vars(candidate)), None)
        if method is not None:
            owner = candidate
            break
    if owner is None or method is None:
        return None
    original = getattr(owner, method)
    counts: Counter[str] = Counter()

    def counting(self: Any, *arguments: Any, **keywords: Any) -> Any:
        counts["attempts"] += 1
        try:
            return original(self, *arguments, **keywords)
        except Exception as error:
            counts[f"failed: {type(error).__name__}"] += 1
            raise

    setattr(owner, method, counting)
    # Items decided (the writer's `decide_event`, where it has one): beside the events posted, what the
    # lost races cost, now that a lost race decides again only the items of the cadres it touched.
    writer_module = importlib.import_module(owner.__module__)
    decide_one = getattr(writer_module, "decide_event", None)
    if decide_one is not None:

        def counted(*arguments: Any, **keywords: Any) -> Any:
            counts["items decided"] += 1
            return decide_one(*arguments, **keywords)

        writer_module.decide_event = counted  # type: ignore[attr-defined]
    return counts


def _lost_races(ledger: Any) -> int | None:
    """The writer's own count of lost races, where it keeps one (`lost_races` on the ledger's writer)."""
    for value in (ledger, *vars(ledger).values()):
        count = getattr(value, "lost_races", None)
        if isinstance(count, int):
            return count
    return None


def _writer(url: str, index: int, job: dict[str, Any], start: Any, out: Any) -> None:
    """One writer process: prepare, report ready, wait for the start, post, report each batch."""
    from ledger import Ledger

    records = _Records()
    logger = logging.getLogger("ledger")
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    attempts = _count_attempts()
    batches = _events(job, index, job["count"], job["tag"])
    warm_up = _events(job, index, WARM_UP_EVENTS, job["tag"] + "-warm")[0]
    with Ledger.open(url, clock=clock) as ledger:
        ledger.load_all()  # as a writer that has posted for a while: its knowledge complete
        ledger.post(warm_up, posted_by="bench")
        before = dict(attempts or {})
        lost_before = _lost_races(ledger)
        out.put(("ready", index, os.getpid()))
        if not start.wait(READY_TIMEOUT_SECONDS):
            out.put(("done", index, {"error": "no start signal"}))
            return
        deadline = time.monotonic() + job["deadline"]
        for batch in batches:
            if time.monotonic() > deadline:
                break
            tried = attempts["attempts"] if attempts is not None else 0
            began = time.monotonic()
            error = ""
            try:
                ledger.post(batch, posted_by="bench")
            except Exception as failure:  # counted and reported: the benchmark goes on
                error = f"{type(failure).__name__}: {str(failure)[:120]}"
            seconds = time.monotonic() - began
            # None: not observable (no `_plan` or `_post_once` to count).
            used = attempts["attempts"] - tried if attempts is not None else None
            out.put(("batch", index, len(batch), began, seconds, used or None, error))
        lost = _lost_races(ledger)
    after = {key: value - before.get(key, 0) for key, value in (attempts or {}).items()}
    if lost is not None and lost_before is not None:
        after["lost_races (the writer's counter)"] = lost - lost_before
    report = {
        "attempts": after if attempts is not None else None,
        "log": dict(records.counts),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    out.put(("done", index, report))


def run_writers(
    url: str,
    cadres: list[str],
    *,
    writers: int,
    mode: str,
    count: int,
    tag: str,
    deadline: float,
    grace: float,
) -> dict[str, Any]:
    """N writer processes on `url`; what they did, measured from the common start."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    start = context.Event()
    share = -(-count // writers)
    job = {"cadres": cadres, "mode": mode, "writers": writers, "count": share, "tag": tag}
    job["deadline"] = deadline
    processes = [
        context.Process(target=_writer, args=(url, index, job, start, out), daemon=True)
        for index in range(writers)
    ]
    for process in processes:
        process.start()
    batches: list[tuple[Any, ...]] = []
    done: dict[int, dict[str, Any]] = {}
    ready = 0
    waited = time.monotonic()
    try:
        while ready < writers:
            message = out.get(timeout=max(0.1, READY_TIMEOUT_SECONDS - (time.monotonic() - waited)))
            if message[0] == "ready":
                ready += 1
            elif message[0] == "done":
                raise RuntimeError(f"writer {message[1]} stopped before the start: {message[2]}")
        began = time.monotonic()
        start.set()
        stop_at = began + deadline + grace
        while len(done) < writers and time.monotonic() < stop_at:
            try:
                message = out.get(timeout=0.5)
            except queue.Empty:
                if all(not process.is_alive() for process in processes):
                    break
                continue
            if message[0] == "batch":
                batches.append(message)
            elif message[0] == "done":
                done[message[1]] = message[2]
    finally:
        terminated = 0
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                terminated += 1
                process.terminate()
                process.join(timeout=5)
    ok = [message for message in batches if not message[6]]
    end = max((message[3] + message[4] for message in batches), default=began)
    posted = sum(message[2] for message in ok)
    attempts: Counter[str] = Counter()
    records: Counter[str] = Counter()
    for info in done.values():
        attempts.update(info.get("attempts") or {})
        records.update(info.get("log") or {})
    return {
        "writers": writers,
        "mode": mode,
        "events": posted,
        "seconds": end - began,
        "events_per_second": posted / (end - began) if end > began else 0.0,
        "batches": [(message[2], message[4], message[5]) for message in ok],
        "failed": Counter(message[6].split(":")[0] for message in batches if message[6]),
        "failures": sorted({message[6] for message in batches if message[6]})[:5],
        "attempts_observable": all(info.get("attempts") is not None for info in done.values()) and bool(done),
        "attempts": dict(attempts),
        "log": dict(records),
        "terminated": terminated,
        "writer_peak_rss_mb": max((info.get("peak_rss_mb", 0.0) for info in done.values()), default=None),
        "timed_out": posted < count and (end - began) >= deadline,
    }
