"""Running the API for the HTTP benchmarks: `ledger serve --workers 1` on a ledger file, keys, a client.

The server is a separate process started with the `ledger` console script, as an operator would; the
benchmark talks to it over loopback with one keep-alive connection (`http.client`: the lightest client the
standard library has, so that the client's own cost stays small beside the server's). The client shares the
machine's two cores with the server.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from benchmarks.workload import log, url_of

__all__ = [
    "Client",
    "ServerUnavailable",
    "check",
    "command_used",
    "create_key",
    "memory_of",
    "peak_rss_of",
    "serving",
    "worker_of",
    "worker_pids",
]

READY_TIMEOUT_SECONDS: Final = 300.0


class ServerUnavailable(RuntimeError):
    """Raised when `ledger serve` cannot be started or does not become ready."""


_COMMAND: list[str] = []


def _ledger_command() -> list[str]:
    """`ledger`, or — while the main CLI does not list `serve` and `keys` yet — `python -m
    ledger.cli_access`, which runs the same commands on their own."""
    if not _COMMAND:
        script = Path(sys.executable).parent / "ledger"
        ledger = [str(script)] if script.exists() else [sys.executable, "-m", "ledger.cli"]
        probe = subprocess.run([*ledger, "serve", "--help"], capture_output=True, check=False)
        _COMMAND.extend(ledger if probe.returncode == 0 else [sys.executable, "-m", "ledger.cli_access"])
    return _COMMAND


def command_used() -> str:
    return " ".join(Path(part).name if index == 0 else part for index, part in enumerate(_ledger_command()))


def create_key(database: Path, principal: str, role: str, *options: str) -> str:
    """Create an API key with `ledger keys create … --format json`; its token."""
    command = [
        *_ledger_command(),
        "keys",
        "create",
        principal,
        "--role",
        role,
        *options,
        "--database",
        url_of(database),
        "--format",
        "json",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ServerUnavailable(f"`ledger keys create` failed ({done.returncode}): {done.stderr.strip()}")
    token: str = json.loads(done.stdout)["token"]
    return token


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def peak_rss_of(pid: int) -> tuple[float, float]:
    """(VmHWM, VmRSS) of a process in MB, from /proc/<pid>/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            values[name] = int(rest.split()[0]) / 1024
    return values["VmHWM"], values["VmRSS"]


def memory_of(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM and its parts RssAnon, RssFile (file pages: the interpreter, libraries, mapped files,
    shareable between processes) and RssShmem of a process, in MB, from /proc/<pid>/status."""
    wanted = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in wanted:
            values[name] = int(rest.split()[0]) / 1024
    return values


def worker_pids(server: Server) -> list[int]:
    """The processes that serve requests: the server itself with one worker; else its worker processes
    (its children, forked by `ledger.api.serving` or spawned by uvicorn before it; not multiprocessing's
    resource tracker)."""
    if server.workers == 1:
        return [server.pid]
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == server.pid and b"resource_tracker" not in command:
            found.append(int(stat.parent.name))
    return sorted(found)


def worker_of(client: Client, server: Server) -> int | None:
    """The worker process holding the server end of `client`'s connection (after a request), or None: the
    socket whose remote port is the client's local port, found in /proc/net/tcp and in a worker's fds."""
    sock = client.connection.sock
    if sock is None:
        return None
    port = sock.getsockname()[1]
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = fields[1].rsplit(":", 1)[1], fields[2].rsplit(":", 1)[1]
            if int(local, 16) == server.port and int(remote, 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    for pid in worker_pids(server):
        for descriptor in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(descriptor) in inodes:
                    return pid
            except OSError:
                continue
    return None


class Client:
    """One keep-alive HTTP/1.1 connection to the server."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closes a connection left idle past its keep-alive timeout (uvicorn: 5 s);
                # open a new one (a post is safe to repeat: its source keys make it idempotent).
                self.connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.connection.close()


class Server:
    def __init__(
        self, process: subprocess.Popen[bytes], port: int, stderr_path: Path, *, workers: int, started: float
    ) -> None:
        self.process = process
        self.port = port
        self.stderr_path = stderr_path
        self.workers = workers
        # time.monotonic() just before the process was started, and the seconds until the first 200 of
        # /health/ready after it.
        self.started = started
        self.ready_seconds = 0.0

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self, token: str | None = None) -> Client:
        return Client(self.port, token)


@contextmanager
def serving(
    database: Path, scratch: Path, *, workers: int = 1, log_level: str = "warning", poll_seconds: float = 0.25
) -> Iterator[Server]:
    """`ledger serve --host 127.0.0.1 --port P --workers N` on `database`, ready (read models open): the
    first 200 of /health/ready, asked every `poll_seconds` (with several workers: one of them)."""
    port = _free_port()
    stderr_path = scratch / "server.log"
    command = [
        *_ledger_command(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--database",
        url_of(database),
        "--log-level",
        log_level,
    ]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("LEDGER_")}
    with stderr_path.open("wb") as stderr:
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=environment)
    server = Server(process, port, stderr_path, workers=workers, started=started)
    try:
        _wait_ready(server, poll_seconds)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(server: Server, poll_seconds: float) -> None:
    started = server.started
    while time.monotonic() - started < READY_TIMEOUT_SECONDS:
        if server.process.poll() is not None:
            tail = server.stderr_path.read_text(errors="replace")[-2000:]
            raise ServerUnavailable(f"`ledger serve` exited with {server.process.returncode}: {tail.strip()}")
        try:
            client = server.client()
            status, _ = client.request("GET", "/health/ready")
            client.close()
            if status == 200:
                server.ready_seconds = time.monotonic() - started
                log(f"server ready after {server.ready_seconds:.1f} s (pid {server.pid})")
                return
        except OSError:
            pass
        time.sleep(poll_seconds)
    raise ServerUnavailable(f"`ledger serve` was not ready after {READY_TIMEOUT_SECONDS:.0f} s")


def check(status: int, body: bytes, expected: tuple[int, ...] = (200, 201)) -> Any:
    """The decoded JSON of a response whose status is one of `expected`; else ServerUnavailable."""
    if status not in expected:
        raise ServerUnavailable(f"HTTP {status} (expected {expected}): {body[:500]!r}")
    return json.loads(body) if body else None
