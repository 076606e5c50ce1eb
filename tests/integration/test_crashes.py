"""Crashes: a writer killed with SIGKILL at random points leaves whole batches and every acknowledged event.

Goal: SPEC §12 — a writer killed mid-batch leaves either the whole batch or none of it, and every
acknowledged event survives; also SPEC §6 (a batch posted again after a crash replays) and §7 (the read
models, kept exactly once, still equal a rebuild). Method: a writer process (`crash_writer.write`, forked
from a forkserver) posts deterministic batches of 1 to 400 events into a SQLite file or a PostgreSQL
schema and reports each batch before posting it and after it is acknowledged. The test waits until a
random number (0 to 3, from a seeded RNG) of new batches are acknowledged, lets a further random moment
pass while it keeps reading reports, then kills the writer with SIGKILL — so kills can land while the
ledger opens, inside a batch's transaction, between batches or in a projection write. After each kill it
opens the ledger and checks every invariant below, then restarts the writer from a batch at or a little
before the first unacknowledged one, so acknowledged batches are posted again and must replay exactly.

The same is done to a real `ledger serve` process posting over HTTP: every batch answered 200 or 201 is
held to the same invariants.

Invariants after every kill:
- positions are dense (1 … head) and each source key is recorded once;
- each attempted batch is wholly present or wholly absent (by its source keys); acknowledged ones present;
- every acknowledged event is at its acknowledged position, with its event id and hash;
- a batch posted again answers with the very same items, all marked replayed;
- the chain verifies, and so does the checkpoint taken after the previous kill (the log still extends it);
- the read models, opened from what the killed writer persisted and caught up, equal a rebuild, and each
  cadre's total equals the sum of its points in the log.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from ledger import Ledger
from ledger.access import KeyStore, Role
from ledger.integrity.verify import Checkpoint
from tests.conftest import fixed_clock
from tests.integration import crash_writer
from tests.integration.crash_writer import SYSTEM, batch_for, check_read_models, setup_events

pytestmark = pytest.mark.slow

SEED = 20251215
KILLS_PER_STORE = 20
SERVER_KILLS = 5
MESSAGE_DEADLINE_SECONDS = 60.0
EXIT_DEADLINE_SECONDS = 30.0
READY_DEADLINE_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 60.0
READY_POLL_SECONDS = 0.05
# After the chosen acknowledgement, the kill waits a random moment in [0, this) while reading reports.
KILL_MOMENT_MAX_SECONDS = 0.08
RESTART_BACK_MAX = 2  # a restarted writer begins up to this many batches before the first unacknowledged

Item = tuple[str, int, str, bool]  # event id, position, hash, replayed


@dataclass
class Expectations:
    """What the writers were told, and what the log must therefore hold."""

    seed: int
    attempted: set[int] = field(default_factory=set)
    acknowledged: dict[int, list[Item]] = field(default_factory=dict)
    checkpoint: Checkpoint | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    views_compared: int = 0

    def next_batch(self) -> int:
        """The first batch never acknowledged."""
        number = 0
        while number in self.acknowledged:
            number += 1
        return number

    def acknowledge(self, number: int, items: list[Item]) -> None:
        """Hold an acknowledgement to the earlier ones of the same batch and to SPEC §6's shape."""
        assert number in self.attempted
        assert len(items) == len(batch_for(self.seed, number))
        earlier = self.acknowledged.get(number)
        if earlier is not None:
            assert [item[:3] for item in items] == [item[:3] for item in earlier], (
                f"batch {number} posted again answered with other items"
            )
            assert all(item[3] for item in items), f"batch {number} posted again did not replay"
        new_positions = [item[1] for item in items if not item[3]]
        if new_positions:
            assert len(new_positions) == len(items), f"batch {number}: part new, part replayed"
            assert new_positions == list(range(new_positions[0], new_positions[0] + len(items))), (
                f"batch {number}: a new batch takes consecutive positions in item order"
            )
        self.acknowledged.setdefault(number, items)


def check_log(url: str, expected: Expectations, in_flight: int | None, when: str = "") -> None:
    """Every invariant of the module docstring, on the log as the killed writer left it."""
    with Ledger.open(url, clock=fixed_clock) as ledger:
        head = ledger.head()
        log = ledger.events(after=0, limit=head + 1)
        assert [entry.position for entry in log] == list(range(1, head + 1)), "positions are dense"
        recorded = {
            (entry.event.source.system, entry.event.source.key): (
                str(entry.event.event_id),
                entry.position,
                entry.hash,
            )
            for entry in log
        }
        assert len(recorded) == len(log), "each source key is recorded once"
        batch_keys: set[tuple[str, str]] = set()
        for number in sorted(expected.attempted):
            keys = [(event.source.system, event.source.key) for event in batch_for(expected.seed, number)]
            batch_keys.update(keys)
            present = [key in recorded for key in keys]
            assert all(present) or not any(present), (
                f"batch {number}: {sum(present)} of {len(keys)} items recorded"
            )
            items = expected.acknowledged.get(number)
            if items is not None:
                for key, (event_id, position, hash_, _replayed) in zip(keys, items, strict=True):
                    assert recorded.get(key) == (event_id, position, hash_), (
                        f"acknowledged {key} is not where it was acknowledged"
                    )
            elif number == in_flight:
                expected.outcomes[
                    "batch in flight: recorded whole" if all(present) else "batch in flight: absent"
                ] += 1
        if in_flight is None:
            expected.outcomes[f"killed {when or 'between batches'}"] += 1
        setup = {(event.source.system, event.source.key) for event in setup_events()}
        stray = {key for key in recorded if key[0] == SYSTEM} - batch_keys - setup
        assert not stray, f"recorded but never posted: {sorted(stray)[:5]}"
        report = ledger.verify()
        assert report.ok, report
        assert report.verified_through == head
        if expected.checkpoint is not None:
            held = ledger.verify(against=expected.checkpoint)
            assert held.ok, f"the log no longer extends the previous checkpoint: {held}"
        expected.checkpoint = ledger.checkpoint()
        expected.views_compared += check_read_models(ledger)


def prepare(url: str) -> None:
    with Ledger.open(url, clock=fixed_clock) as ledger:
        ledger.post(setup_events(), posted_by="setup")


# The library writer, killed.


@pytest.fixture(scope="module")
def forkserver() -> multiprocessing.context.BaseContext:
    """Writers fork from a server that has imported the ledger once: a restart costs a fork."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([crash_writer.__name__])
    return context


def receive(connection: Any, timeout: float) -> dict[str, Any] | None:
    """The writer's next report; None when the pipe closed (the writer died)."""
    if not connection.poll(timeout):
        pytest.fail(f"the writer reported nothing for {timeout} s")
    try:
        message: dict[str, Any] = msgspec.json.decode(connection.recv_bytes())
    except EOFError:
        return None
    if "error" in message:
        pytest.fail(f"the writer failed:\n{message['error']}")
    return message


def test_a_writer_killed_at_random_points_leaves_whole_batches_and_every_acknowledged_event(
    store_url: str, forkserver: multiprocessing.context.BaseContext
) -> None:
    prepare(store_url)
    rng = random.Random(SEED)
    expected = Expectations(SEED)
    progress_wanted = 0
    for _kill in range(KILLS_PER_STORE):
        first_unacknowledged = expected.next_batch()
        start = max(0, first_unacknowledged - rng.randint(0, RESTART_BACK_MAX))
        progress = rng.choice((0, 1, 1, 2, 3))  # new batches to see acknowledged before the kill
        progress_wanted += progress
        moment = rng.uniform(0, KILL_MOMENT_MAX_SECONDS)
        reader, sender = forkserver.Pipe(duplex=False)
        writer = forkserver.Process(  # type: ignore[attr-defined]
            target=crash_writer.write, args=(store_url, SEED, start, sender), daemon=True
        )
        writer.start()
        sender.close()
        in_flight: int | None = None
        posted = False

        def handle(message: dict[str, Any] | None) -> bool:
            """Record one report; False once the pipe is closed."""
            nonlocal in_flight, posted
            if message is None:
                return False
            if "posting" in message:
                in_flight, posted = message["posting"], True
                expected.attempted.add(message["posting"])
            elif "ack" in message:
                expected.acknowledge(message["ack"], [tuple(item) for item in message["items"]])
                in_flight = None
            return True

        while expected.next_batch() < first_unacknowledged + progress:
            assert handle(receive(reader, MESSAGE_DEADLINE_SECONDS)), "the writer died before it was killed"
        deadline = time.monotonic() + moment
        while (remaining := deadline - time.monotonic()) > 0:
            if reader.poll(remaining):
                assert handle(receive(reader, 0)), "the writer died before it was killed"
        writer.kill()
        writer.join(EXIT_DEADLINE_SECONDS)
        assert writer.exitcode == -signal.SIGKILL
        # Whole reports written before the kill were delivered: they count as acknowledged.
        while reader.poll(0) and handle(receive(reader, 0)):
            pass
        reader.close()
        check_log(store_url, expected, in_flight if posted else None, "" if posted else "while opening")
    print(
        f"\n{store_url.partition(':')[0]}: {KILLS_PER_STORE} kills, {len(expected.acknowledged)} batches "
        f"acknowledged, {len(expected.attempted)} attempted, outcomes {dict(expected.outcomes)}, "
        f"{expected.views_compared} read-model views compared with a rebuild"
    )
    assert len(expected.acknowledged) >= progress_wanted


# The server, killed.


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(url: str, log: Path) -> Server:
    """`ledger serve` (one worker: the process killed is the one serving) on a free port, once ready."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "ledger.cli_access",
        "serve",
        "--database",
        url,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
    ]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("LEDGER_")}
    with log.open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    with httpx.Client(base_url=server.base, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{server.output()}")
            try:
                if client.get("/health/ready").status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(READY_POLL_SECONDS)  # polling interval while the server starts
    process.kill()
    pytest.fail(f"the server was not ready within {READY_DEADLINE_SECONDS} s:\n{server.output()}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    prepare(url)
    with KeyStore.open(url) as keys:
        tokens = {
            "poster": keys.create(
                "crash-poster",
                Role.poster,
                system=SYSTEM,
                event_types=["cadre.registered", "cadre.transferred", "merit.awarded", "deduction.applied"],
            ).token,
            "reader": keys.create("crash-reader", Role.reader).token,
        }
    yield url, tokens


def post_until_gone(
    server: Server, tokens: dict[str, str], seed: int, start: int, report: Callable[[tuple[Any, ...]], None]
) -> None:
    """A client posting batches `start`, … until the server is gone; reads a ranking every third batch."""
    poster = {"Authorization": f"Bearer {tokens['poster']}"}
    reader = {"Authorization": f"Bearer {tokens['reader']}"}
    try:
        with httpx.Client(base_url=server.base, timeout=REQUEST_TIMEOUT_SECONDS) as client:
            for number in range(start, start + crash_writer.BATCHES_PER_RUN_MAX):
                body = msgspec.json.encode({"events": batch_for(seed, number)})
                report(("posting", number))
                response = client.post(
                    "/v1/events", content=body, headers=poster | {"Content-Type": "application/json"}
                )
                if response.status_code not in (200, 201):
                    report(("refused", number, response.status_code, response.text))
                    return
                results = response.json()["results"]
                items = [(r["event_id"], r["position"], r["hash"], r["replayed"]) for r in results]
                report(("ack", number, items))
                if number % 3 == 0:
                    position = max(item[1] for item in items)
                    ranking = client.get(
                        "/v1/rankings", params={"scope": "all", "min_position": position}, headers=reader
                    )
                    if ranking.status_code != 200:
                        report(("refused", number, ranking.status_code, ranking.text))
                        return
    except httpx.TransportError as error:
        report(("gone", repr(error)))
        return
    report(("done",))


def test_a_server_killed_mid_load_leaves_whole_batches_and_every_acknowledged_event(
    served: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, tokens = served
    rng = random.Random(SEED + 1)
    expected = Expectations(SEED + 1)
    log = tmp_path / "server.log"
    for _kill in range(SERVER_KILLS):
        server = start_server(url, log)
        first_unacknowledged = expected.next_batch()
        start = max(0, first_unacknowledged - rng.randint(0, RESTART_BACK_MAX))
        progress = rng.randint(1, 4)
        moment = rng.uniform(0, KILL_MOMENT_MAX_SECONDS)
        reports: queue.Queue[tuple[Any, ...]] = queue.Queue()
        client = threading.Thread(
            target=post_until_gone, args=(server, tokens, expected.seed, start, reports.put), daemon=True
        )
        client.start()
        in_flight: int | None = None

        def handle(message: tuple[Any, ...]) -> None:
            nonlocal in_flight
            kind = message[0]
            if kind == "posting":
                in_flight = message[1]
                expected.attempted.add(message[1])
            elif kind == "ack":
                expected.acknowledge(message[1], [tuple(item) for item in message[2]])
                in_flight = None
            elif kind == "refused":
                pytest.fail(f"batch {message[1]}: {message[2]} {message[3]}")

        try:
            while expected.next_batch() < first_unacknowledged + progress:
                message = reports.get(timeout=MESSAGE_DEADLINE_SECONDS)
                assert message[0] not in ("gone", "done"), message
                handle(message)
            deadline = time.monotonic() + moment
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    handle(reports.get(timeout=remaining))
                except queue.Empty:
                    break
        finally:
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(EXIT_DEADLINE_SECONDS)
        assert server.process.returncode == -signal.SIGKILL
        client.join(REQUEST_TIMEOUT_SECONDS)
        assert not client.is_alive(), "the client noticed the server was gone"
        while True:
            message = reports.get_nowait()
            if message[0] in ("gone", "done"):
                break
            handle(message)
        check_log(url, expected, in_flight)
    print(
        f"\nserver: {SERVER_KILLS} kills, {len(expected.acknowledged)} batches acknowledged, "
        f"{len(expected.attempted)} attempted, outcomes {dict(expected.outcomes)}, "
        f"{expected.views_compared} read-model views compared with a rebuild"
    )
    assert "Traceback" not in log.read_text(errors="replace")
