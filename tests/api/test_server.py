"""End to end: `serve` in a real server process on 127.0.0.1, several clients at once.

Goal: what the in-process tests cannot show — the production server (uvicorn, uvloop, httptools, worker
processes) answers over real sockets, and concurrent posts with overlapping idempotency keys lose nothing
and duplicate nothing, and the chain still verifies. Method: seed a ledger file, create keys, start
`serve` on a free port in a subprocess, poll /health/ready with a deadline, post from threads, read back
the log, stop the server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger import Ledger
from ledger.access import KeyStore, Role
from tests.conftest import registration

pytestmark = pytest.mark.slow

READY_DEADLINE_SECONDS = 60.0
STOP_DEADLINE_SECONDS = 20.0
REQUEST_TIMEOUT_SECONDS = 60.0
CLIENTS = 6
BATCHES_PER_CLIENT = 8
BATCH_SIZE = 25
# Every client posts the same key space in a different order, so most keys are posted several times.
KEY_SPACE = 200


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    def __init__(self, url: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.base = f"http://127.0.0.1:{port}"
        self.process = process
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until_ready(server: Server, workers: int) -> None:
    """Until /health/ready answers 200 and every worker has logged its read models open: a readiness
    probe reaches one worker (a kept-alive connection always the same), and with two workers the other
    may still be loading them (it answers 503 meanwhile, as documented)."""
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    with httpx.Client(base_url=server.base, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(f"the server exited with {server.process.returncode}:\n{server.output()}")
            try:
                ready = client.get("/health/ready").status_code == 200
            except httpx.TransportError:
                ready = False
            if ready and server.output().count(READ_MODELS_OPEN_LINE) >= workers:
                return
            time.sleep(0.1)  # polling interval while the server starts, not a synchronization
    pytest.fail(f"the server was not ready within {READY_DEADLINE_SECONDS} s:\n{server.output()}")


# What each worker logs once its read models are open (ledger.api.services, at INFO).
READ_MODELS_OPEN_LINE = "read models open at position"


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(STOP_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(STOP_DEADLINE_SECONDS)


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[str, dict[str, str]]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger.open(url) as ledger:
        ledger.post([registration(f"C{n}", unit_id=f"U{n % 3}", key=f"reg-{n}") for n in range(20)])
    with KeyStore.open(url) as keys:
        tokens = {
            "poster": keys.create("hr-sync", Role.poster, system="hr", event_types=["merit.awarded"]).token,
            "reader": keys.create("reader", Role.reader).token,
            "auditor": keys.create("auditor", Role.auditor).token,
        }
    return url, tokens


@pytest.fixture(params=[1, 2], ids=["one-worker", "two-workers"])
def server(
    request: pytest.FixtureRequest, seeded: tuple[str, dict[str, str]], tmp_path: Path
) -> Iterator[Server]:
    url, _tokens = seeded
    port = free_port()
    log = tmp_path / "server.log"
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
        str(request.param),
    ]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("LEDGER_")}
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment)
    running = Server(url, port, process, log)
    try:
        wait_until_ready(running, request.param)
        yield running
    finally:
        stop(running)


def merit(key: int) -> dict[str, Any]:
    return {
        "type": "merit.awarded",
        "cadre_id": f"C{key % 20}",
        "effective_on": f"2024-{1 + key % 12:02d}-{1 + key % 28:02d}",
        "source": {"system": "hr", "key": f"e2e-{key}"},
        "award": "citation",
        "level": "unit",
    }


def post_batches(server: Server, token: str, client_number: int) -> list[tuple[int, dict[str, Any]]]:
    """One client's posts: every batch's status and body."""
    answers = []
    keys = [(client_number * 37 + step * 13) % KEY_SPACE for step in range(BATCHES_PER_CLIENT * BATCH_SIZE)]
    with httpx.Client(
        base_url=server.base, timeout=REQUEST_TIMEOUT_SECONDS, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for start in range(0, len(keys), BATCH_SIZE):
            batch = list(dict.fromkeys(keys[start : start + BATCH_SIZE]))
            response = client.post("/v1/events", json={"events": [merit(key) for key in batch]})
            answers.append((response.status_code, response.json() | {"keys": batch}))
    return answers


def test_concurrent_posts_with_overlapping_keys_lose_and_duplicate_nothing(
    server: Server, seeded: tuple[str, dict[str, str]]
) -> None:
    _url, tokens = seeded
    with httpx.Client(
        base_url=server.base, headers={"Authorization": f"Bearer {tokens['auditor']}"}
    ) as auditor:
        head_before = auditor.get("/v1/events", params={"after": 0, "limit": 1}).json()["position"]
    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = [
            answer
            for client_answers in pool.map(
                lambda number: post_batches(server, tokens["poster"], number), range(CLIENTS)
            )
            for answer in client_answers
        ]
    assert all(status in (200, 201) for status, _ in answers), [a for a in answers if a[0] not in (200, 201)]
    # Every acknowledged key has one event: the same event id and position whoever posted it.
    placed: dict[int, tuple[str, int]] = {}
    for _status, body in answers:
        for key, item in zip(body["keys"], body["results"], strict=True):
            placed.setdefault(key, (item["event_id"], item["position"]))
            assert placed[key] == (item["event_id"], item["position"]), f"key {key} placed twice"
    positions = sorted(position for _, position in placed.values())
    assert positions == list(range(head_before + 1, head_before + len(placed) + 1)), "dense, no duplicates"
    with httpx.Client(
        base_url=server.base,
        headers={"Authorization": f"Bearer {tokens['auditor']}"},
        timeout=REQUEST_TIMEOUT_SECONDS,
    ) as auditor:
        log = auditor.get("/v1/events", params={"after": head_before, "limit": 1000}).json()
        assert log["position"] == head_before + len(placed)
        assert sorted(event["event"]["source"]["key"] for event in log["events"]) == sorted(
            f"e2e-{key}" for key in placed
        )
        assert {event["event"]["posted_by"] for event in log["events"]} == {"hr-sync"}
        report = auditor.get("/v1/audit/verify").json()
        assert report["ok"] is True
        assert report["verified_through"] == head_before + len(placed)


def test_the_server_answers_reads_keys_and_errors_over_real_sockets(
    server: Server, seeded: tuple[str, dict[str, str]]
) -> None:
    _url, tokens = seeded
    with httpx.Client(base_url=server.base, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        assert client.get("/v1/cadres/C1/history").status_code == 401
        reader = {"Authorization": f"Bearer {tokens['reader']}"}
        history = client.get("/v1/cadres/C1/history", headers=reader)
        assert history.status_code == 200
        assert history.json()["entries"][0]["type"] == "cadre.registered"
        ranking = client.get("/v1/rankings", params={"scope": "unit:U1"}, headers=reader)
        assert ranking.status_code == 200, ranking.text
        poster = {"Authorization": f"Bearer {tokens['poster']}"}
        assert client.get("/v1/cadres/C1/history", headers=poster).status_code == 403
        too_large = client.post(
            "/v1/events",
            content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
            headers=poster | {"Content-Type": "application/json"},
        )
        assert too_large.status_code == 413
        assert too_large.headers["content-type"] == "application/problem+json"
        assert client.get("/schema/openapi.json").status_code == 200
    stop(server)
    assert server.process.returncode is not None
    output = server.output()
    assert "Traceback" not in output, output
    assert '"GET /v1/cadres/C1/history" 200' in output, "requests are logged"


def children_of(pid: int) -> set[int]:
    """The processes whose parent is `pid` (Linux: /proc/<pid>/task/<tid>/children)."""
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children.update(int(child) for child in (task / "children").read_text().split())
    return children


def wait_for(condition: Any, what: str, server: Server) -> None:
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)  # polling interval while a worker starts, not a synchronization
    pytest.fail(f"{what} within {READY_DEADLINE_SECONDS} s:\n{server.output()}")


def start_serving(url: str, tmp_path: Path, workers: int, **environment: str) -> Server:
    port = free_port()
    log = tmp_path / f"server-{workers}.log"
    command = [sys.executable, "-m", "ledger.cli_access", "serve", "--database", url]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("LEDGER_")}
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=inherited | environment
        )
    return Server(url, port, process, log)


def test_a_killed_worker_is_replaced_by_a_worker_that_serves_and_stopping_ends_every_worker(
    seeded: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    """Goal: workers forked from the server's process (ledger.api.serving), and supervised as uvicorn's
    spawned ones were. Method: with two workers, check that each runs the server's command line; kill
    one with SIGKILL (no chance to clean up); the supervisor forks a replacement, which opens its read
    models and serves; posts and reads succeed through whichever worker takes them; SIGINT then ends the
    parent and every worker."""
    url, tokens = seeded
    server = start_serving(url, tmp_path, 2)
    process = server.process
    try:
        wait_until_ready(server, 2)
        workers = children_of(process.pid)
        assert len(workers) == 2, workers
        # Forked, not spawned: a worker runs the server's own command line, not multiprocessing's
        # `spawn_main`, so it imported nothing and built no app of its own.
        parent_command = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        for worker in workers:
            assert Path(f"/proc/{worker}/cmdline").read_bytes() == parent_command
        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        wait_for(
            lambda: server.output().count(READ_MODELS_OPEN_LINE) >= 3,
            "no replacement worker opened its read models",
            server,
        )
        replaced = children_of(process.pid)
        assert killed not in replaced and len(replaced) == 2, (killed, replaced)
        # A signal the supervisor handles for itself ends a worker as it ended a spawned one (the forked
        # worker does not keep the supervisor's handlers), and the worker is replaced.
        hung_up = min(replaced)
        os.kill(hung_up, signal.SIGHUP)
        wait_for(
            lambda: (
                server.output().count(READ_MODELS_OPEN_LINE) >= 4 and hung_up not in children_of(process.pid)
            ),
            "a worker sent SIGHUP was not replaced",
            server,
        )
        replaced = children_of(process.pid)
        assert len(replaced) == 2, replaced
        poster = {"Authorization": f"Bearer {tokens['poster']}"}
        reader = {"Authorization": f"Bearer {tokens['reader']}"}
        with httpx.Client(base_url=server.base, timeout=REQUEST_TIMEOUT_SECONDS) as client:
            for number in range(4):  # new connections: each may reach either worker
                posted = client.post("/v1/events", json={"events": [merit(1_000 + number)]}, headers=poster)
                assert posted.status_code == 201, posted.text
                read = client.get("/v1/cadres/C1/history", headers=reader | {"Connection": "close"})
                assert read.status_code == 200, read.text
    finally:
        stop(server)
    assert process.returncode == 0, server.output()
    for pid in replaced:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert "Traceback" not in server.output(), server.output()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_server_whose_workers_cannot_start_exits_3_with_one_worker_or_several(
    seeded: tuple[str, dict[str, str]], tmp_path: Path, workers: int
) -> None:
    """Goal: a supervisor (systemd's Restart=on-failure, a container runtime) sees a failed start as a
    failure however many workers there are. Method: a signing key file that does not exist makes every
    worker's startup fail; uvicorn's supervisor stops and returned as after a clean stop (exit 0)."""
    url, _tokens = seeded
    server = start_serving(url, tmp_path, workers, LEDGER_SIGNING_KEY_FILE=str(tmp_path / "no.key"))
    try:
        server.process.wait(READY_DEADLINE_SECONDS)
    finally:
        stop(server)
    assert server.process.returncode == 3, server.output()
    assert READ_MODELS_OPEN_LINE not in server.output()


def test_a_worker_started_after_the_database_file_went_serves_no_new_empty_ledger(
    seeded: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    """Goal: a server never serves a ledger it created itself beside the one it was started on. Method:
    with two workers ready, remove the SQLite file (and its WAL), kill one worker: its replacement must
    not create a new, empty ledger at that path; it fails to start, and the server stops (exit 3) rather
    than answer from two ledgers."""
    url, _tokens = seeded
    server = start_serving(url, tmp_path, 2)
    try:
        wait_until_ready(server, 2)
        database = Path(url.removeprefix("sqlite:///"))
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            path.unlink(missing_ok=True)
        os.kill(min(children_of(server.process.pid)), signal.SIGKILL)
        server.process.wait(READY_DEADLINE_SECONDS)
    finally:
        stop(server)
    assert server.process.returncode == 3, server.output()
    assert not database.exists(), "a worker created a new ledger file"
    assert server.output().count(READ_MODELS_OPEN_LINE) == 2, server.output()
