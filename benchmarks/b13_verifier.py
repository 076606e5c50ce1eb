"""B13 — the standalone verifier: `ledger-verify export` of the city, against hashlib over the same lines.

What is measured: the cached city (about a million events) is exported once to a file (not timed) and
checkpointed by the ledger (`Ledger.checkpoint()`, which verifies the log first; not timed). Then, three
times, in this process: the time of `ledger_verify.cli.main(["export", FILE, CHECKPOINT])` — read the file
in blocks, recompute every line's chain hash and check its framing, position and links, rebuild the Merkle
tree (RFC 9162) over every line's canonical bytes, hold both to the checkpoint at the head — divided into
the number of events. An export this size gets the Merkle tree in a second process (ledger_verify.export);
the same check in one process is reported in the details.

Baseline, in the same run and interleaved with the runs above (so that both see the same machine):
hashlib over the same bytes read the same way — the file in blocks of `BLOCK_SIZE`, split into lines,
`hashlib.sha256(line).digest()` for each line. Target: the verifier at ≥ 0.5× the baseline's rate.

Back of the envelope: per line the verifier makes three SHA-256 calls where the baseline makes one — the
chain over the line's bytes, the leaf over the same bytes, and one interior node (n − 1 of them for n
leaves) over 65 bytes; at about 0.5 µs per hashlib call plus about 0.7 ns per byte, that is ≈ 2.5 µs of
hashing per 650-byte line against ≈ 1 µs, so one process cannot pass 0.4×. The chain and the tree are
independent until the end: with the tree in a second process, each process does about one line's worth
of hashing plus the splitting, ≈ 0.5–0.6× on two free cores.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path
from typing import Final

import msgspec

from benchmarks.workload import (
    Result,
    city,
    clock,
    log,
    median,
    peak_rss_mb,
    scratch_dir,
    timed,
    url_of,
    working_copy,
)

REPETITIONS: Final = 3
TARGET_RATIO: Final = 0.5


def _hash_every_line(path: Path, block_size: int) -> int:
    """The baseline: the file read as the verifier reads it, and SHA-256 of each line; the lines hashed."""
    sha256 = hashlib.sha256
    count = 0
    with path.open("rb") as stream:
        carry = b""
        while block := stream.read(block_size):
            lines = block.split(b"\n")
            lines[0] = carry + lines[0]
            carry = lines.pop()
            for line in lines:
                sha256(line).digest()
            count += len(lines)
    return count


def _verify(export: Path, checkpoint: Path) -> str:
    from ledger_verify.cli import main

    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = main(["export", str(export), str(checkpoint)])
    if code != 0:
        raise RuntimeError(f"ledger-verify failed on the city's export: {output.getvalue().strip()}")
    return output.getvalue().strip()


def run() -> Result:
    from ledger import Ledger
    from ledger_verify.checkpoint import parse_checkpoint
    from ledger_verify.export import BLOCK_SIZE, verify_export

    source, _about = city("1m")
    with scratch_dir("b13") as scratch:
        database = working_copy(source, scratch / "ledger.db")
        export, checkpoint = scratch / "city.jsonl", scratch / "checkpoint.json"
        with Ledger.open(url_of(database), clock=clock, create=False) as ledger:
            log("B13: exporting the city")
            with export.open("wb") as stream:
                export_seconds, events = timed(lambda: ledger.export(stream))
            log("B13: the ledger's checkpoint of its head (verifies the log first)")
            checkpoint.write_bytes(msgspec.json.encode(ledger.checkpoint()))
        size = export.stat().st_size
        log(f"B13: {events:,} events, {size / 1e6:,.0f} MB; warm-up, then {REPETITIONS} rounds")
        _hash_every_line(export, BLOCK_SIZE)  # the file in the page cache, for both
        verdict = _verify(export, checkpoint)
        rates, hashed = [], []
        for repetition in range(REPETITIONS):
            seconds, lines = timed(lambda: _hash_every_line(export, BLOCK_SIZE))
            hashed.append((lines - 1) / seconds)  # the header is not an event
            seconds, verdict = timed(lambda: _verify(export, checkpoint))
            rates.append(events / seconds)
            log(
                f"B13: round {repetition + 1}: verifier {rates[-1]:,.0f} events/s, "
                f"hashlib {hashed[-1]:,.0f} lines/s ({rates[-1] / hashed[-1]:.2f}×)"
            )
        document = parse_checkpoint(checkpoint.read_bytes())
        with export.open("rb") as stream:
            single_seconds, report = timed(lambda: verify_export(stream, document, parallel=False))
        if not report.ok:
            raise RuntimeError(f"the one-process check failed: {report.failure}")
        rss = peak_rss_mb()
    measured, baseline = median(rates), median(hashed)
    return Result(
        id="B13",
        what=f"ledger-verify export of the city, {events:,} events ({size / 1e6:,.0f} MB)",
        target=f"≥ {TARGET_RATIO}× hashlib over the same lines",
        measured=measured,
        unit="events/s",
        baselines=[("hashlib SHA-256 of each line, read the same way", baseline)],
        met=measured >= TARGET_RATIO * baseline,
        peak_rss_mb=rss,
        details={
            "events": events,
            "export_bytes": size,
            "verdict": verdict,
            "ratio": round(measured / baseline, 3),
            "repetitions_events_per_second": [round(rate) for rate in rates],
            "hashlib_repetitions_lines_per_second": [round(rate) for rate in hashed],
            "one_process_events_per_second": round(events / single_seconds),
            "one_process_ratio": round(events / single_seconds / baseline, 3),
            "verifier_megabytes_per_second": round(measured * size / events / 1e6, 1),
            "export_seconds": round(export_seconds, 1),
        },
    )
