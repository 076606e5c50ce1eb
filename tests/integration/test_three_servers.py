"""Three `ledger serve` processes on one PostgreSQL schema, as three machines would run them (issue 11, 7).

Goal: the scale-out path — several API processes over one PostgreSQL primary — loses, duplicates and
reorders nothing; the rules that span a cadre's stream (the annual merit cap, departing once, nothing dated
after a departure, registering before scoring, one appraisal a year) hold whichever server decides; every
server answers the same once caught up; a key made on one machine works on every server; a server killed
with SIGKILL in the middle of the load loses nothing it acknowledged while the others keep answering, and a
restarted one catches up. A second test cuts the log's last events behind two running servers' backs, as
a standby promoted without its last commits would look, and holds them to what docs/operations.md says.

Method: seed a fresh schema (cadres, keys) with the library; start three servers on free ports of
127.0.0.1; post from threads to all three at once — batches for the same cadres round-robin over the
servers, twin batches sent to two servers at the same instant (a barrier), single posts racing on one
cadre's lifecycle; compute every cadre's total by hand from the workload and the policy's table (a naive
model, not the ledger's code); read everything back from every server. Waits poll with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from ledger import Ledger
from ledger.access import KeyStore, Role
from tests.conftest import registration
from tests.support import raw_sql

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

READY_DEADLINE_SECONDS: Final = 60.0
STOP_DEADLINE_SECONDS: Final = 20.0
REQUEST_TIMEOUT_SECONDS: Final = 60.0
RACE_DEADLINE_SECONDS: Final = 30.0
BUSY_ATTEMPTS_MAX: Final = 20
BUSY_BACKOFF_SECONDS_MAX: Final = 0.5
POLL_SECONDS: Final = 0.05  # the interval of a poll that has a deadline, never a synchronization
TIME_ZONE: Final = "Asia/Shanghai"  # every replica decides "today" in the same zone

CADRES: Final = tuple(f"C{n:02d}" for n in range(12))
DEPARTING: Final = "L1"
LATE: Final = "N1"  # registered while another server already posts for it
BULK_CLIENTS: Final = 6
BULK_BATCHES: Final = 6
BULK_SIZE: Final = 20
TWIN_PAIRS: Final = 6
TWIN_SIZE: Final = 5
LATE_MERITS: Final = 8

# The illustrative policy's figures (src/ledger/policy/illustrative.toml), copied by hand.
MERIT_CAP: Final = Decimal("30.00")
NOMINAL: Final = {
    ("citation", "municipal"): Decimal("2.00"),
    ("merit_third_class", "municipal"): Decimal("4.00"),
    ("merit_first_class", "municipal"): Decimal("10.00"),
    ("performance_award", "unit"): Decimal("0.20"),
    ("citation", "unit"): Decimal("0.50"),
}
CRITICISM: Final = Decimal("-1.00")
COMPETENT: Final = Decimal("2.00")
POSTER_TYPES: Final = (
    "cadre.registered",
    "cadre.departed",
    "merit.awarded",
    "deduction.applied",
    "appraisal.recorded",
)

Event = dict[str, Any]


# The servers.


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def environment(index: Path | None = None) -> dict[str, str]:
    """What a replica's machine sets: the zone and, for a server, the directory of its persisted read
    models (each machine has its own disk); nothing else of the test run's LEDGER_ variables."""
    kept = {name: value for name, value in os.environ.items() if not name.startswith("LEDGER_")}
    return kept | {"LEDGER_TIMEZONE": TIME_ZONE} | ({"LEDGER_INDEX_DIR": str(index)} if index else {})


class Server:
    """One `ledger serve` process, as one machine would run it; restartable on a new port."""

    def __init__(self, name: str, url: str, logs: Path) -> None:
        self.name = name
        self.url = url
        self.logs = logs
        self.starts = 0
        self.killed = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None
        self.base = ""

    @property
    def index(self) -> Path:
        return self.logs / f"{self.name}-index"

    @property
    def log(self) -> Path:
        return self.logs / f"{self.name}-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        self.killed.clear()
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "ledger.cli_access", "serve", "--database", self.url]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, env=environment(self.index)
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_ready(self) -> dict[str, Any]:
        assert self.process is not None
        deadline = time.monotonic() + READY_DEADLINE_SECONDS
        with httpx.Client(base_url=self.base, timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.output()}")
                try:
                    response = client.get("/health/ready")
                    if response.status_code == 200:
                        ready: dict[str, Any] = response.json()
                        return ready
                except httpx.TransportError:
                    pass
                time.sleep(POLL_SECONDS)
        pytest.fail(f"{self.name} was not ready within {READY_DEADLINE_SECONDS} s:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, open transactions die with the connections."""
        assert self.process is not None
        self.killed.set()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(STOP_DEADLINE_SECONDS)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(STOP_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_DEADLINE_SECONDS)


@dataclass
class Cluster:
    url: str
    servers: list[Server]
    tokens: dict[str, str]

    def client(self, server: Server, role: str) -> httpx.Client:
        return httpx.Client(
            base_url=server.base,
            timeout=REQUEST_TIMEOUT_SECONDS,
            headers={"Authorization": f"Bearer {self.tokens[role]}"},
        )


def seed(url: str, cadres: tuple[str, ...]) -> dict[str, str]:
    with Ledger.open(url) as ledger:
        ledger.post(
            [registration(c, unit_id=f"U{n % 3}", key=f"reg-{c}") for n, c in enumerate(cadres)],
            posted_by="seed",
        )
    with KeyStore.open(url) as keys:
        return {
            "poster": keys.create("hr-sync", Role.poster, system="hr", event_types=POSTER_TYPES).token,
            "reader": keys.create("reader", Role.reader).token,
            "auditor": keys.create("auditor", Role.auditor).token,
        }


@contextlib.contextmanager
def running(url: str, logs: Path, count: int, tokens: dict[str, str]) -> Iterator[Cluster]:
    servers = [Server(f"s{number}", url, logs) for number in range(count)]
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_until_ready()
        yield Cluster(url, servers, tokens)
    finally:
        for server in servers:
            server.stop()


# The workload, and the naive model of what it adds up to.


def merit(cadre: str, on: str, award: str, level: str, key: str) -> Event:
    return {
        "type": "merit.awarded",
        "cadre_id": cadre,
        "effective_on": on,
        "source": {"system": "hr", "key": key},
        "award": award,
        "level": level,
    }


def criticism(cadre: str, on: str, key: str) -> Event:
    return {
        "type": "deduction.applied",
        "cadre_id": cadre,
        "effective_on": on,
        "source": {"system": "hr", "key": key},
        "kind": "criticism",
        "level": "unit",
    }


def bulk_batch(phase: int, client: int, number: int) -> list[Event]:
    """Merits of 2024 (far beyond the cap, in total), small merits of 2025, criticisms; many cadres."""
    events = []
    for item in range(BULK_SIZE):
        cadre = CADRES[(client * 5 + number * 3 + item) % len(CADRES)]
        key = f"p{phase}-{client}-{number}-{item}"
        month, day = 1 + (number + item) % 12, 1 + (client + item) % 28
        kind = item % 4
        if kind == 0:
            events.append(merit(cadre, f"2024-{month:02d}-{day:02d}", "citation", "municipal", key))
        elif kind == 1:
            events.append(merit(cadre, f"2024-{month:02d}-{day:02d}", "merit_third_class", "municipal", key))
        elif kind == 2:
            events.append(
                merit(cadre, f"2025-{1 + month % 6:02d}-{day:02d}", "performance_award", "unit", key)
            )
        else:
            events.append(criticism(cadre, f"2024-{month:02d}-{day:02d}", key))
    return events


def twin_batch(pair: int) -> list[Event]:
    return [
        merit(
            CADRES[(pair * 5 + item) % len(CADRES)],
            f"2025-07-{1 + item:02d}",
            "citation",
            "unit",
            f"twin-{pair}-{item}",
        )
        for item in range(TWIN_SIZE)
    ]


class Model:
    """Each cadre's total, from the events expected in the log: merits capped per calendar year."""

    def __init__(self) -> None:
        self.merits: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
        self.other: dict[str, Decimal] = defaultdict(Decimal)
        self.departed_on: str | None = None

    def add(self, event: Event) -> None:
        cadre, year = event["cadre_id"], int(event["effective_on"][:4])
        if event["type"] == "merit.awarded":
            self.merits[(cadre, year)] += NOMINAL[(event["award"], event["level"])]
        elif event["type"] == "deduction.applied":
            self.other[cadre] += CRITICISM
        elif event["type"] == "appraisal.recorded":
            self.other[cadre] += COMPETENT

    def merit(self, cadre: str, year: int) -> Decimal:
        return min(MERIT_CAP, self.merits[(cadre, year)])

    def total(self, cadre: str) -> Decimal:
        years = {year for c, year in self.merits if c == cadre}
        return sum((self.merit(cadre, year) for year in years), self.other[cadre])


# Posting.


@dataclass
class Answer:
    label: str
    server: str
    status: int
    events: list[Event]
    body: dict[str, Any]
    failed_over: bool = False

    @property
    def recorded(self) -> bool:
        return self.status in (200, 201)

    @property
    def rule(self) -> str | None:
        rule: str | None = self.body.get("rule")
        return rule


def post(client: httpx.Client, events: list[Event]) -> tuple[int, dict[str, Any]]:
    """Post a batch as a well-behaved client does: a 503 `lock_busy` (more than 8 posts waiting in one
    process, or the append lock held past 5 s on a loaded machine) recorded nothing and asks to come back
    after `Retry-After`, so the same batch is sent again, a bounded number of times."""
    for _attempt in range(BUSY_ATTEMPTS_MAX):
        response = client.post("/v1/events", json={"events": events})
        body: dict[str, Any] = response.json()
        if response.status_code != 503 or body.get("rule") != "lock_busy":
            return response.status_code, body
        time.sleep(min(float(response.headers["Retry-After"]), BUSY_BACKOFF_SECONDS_MAX))  # a backoff
    return response.status_code, body


def post_one(cluster: Cluster, server: Server, label: str, events: list[Event]) -> Answer:
    with cluster.client(server, "poster") as client:
        status, body = post(client, events)
    return Answer(label, server.name, status, events, body)


@dataclass
class Kill:
    """Kill `victim` once it has acknowledged `after` batches; clients hold their last batches until then."""

    victim: Server
    after: int
    acknowledged: int = 0
    enough: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self, server: Server) -> None:
        if server is self.victim:
            with self.lock:
                self.acknowledged += 1
                if self.acknowledged >= self.after:
                    self.enough.set()

    def run(self) -> None:
        try:
            assert self.enough.wait(RACE_DEADLINE_SECONDS), "the victim acknowledged too few batches"
            self.victim.kill()
        finally:
            self.done.set()


def bulk_client(cluster: Cluster, phase: int, number: int, kill: Kill | None = None) -> list[Answer]:
    """Post this client's batches round-robin over the servers, one after the other (each waits for the
    previous answer); a batch whose server was killed goes to the next server, as a load balancer would
    send it (the same source keys: a replay if the killed server had committed it)."""
    answers = []
    clients = {server.name: cluster.client(server, "poster") for server in cluster.servers}
    try:
        for batch in range(BULK_BATCHES):
            if kill is not None and batch == BULK_BATCHES - len(cluster.servers):
                # Each of the last batches goes to another server: one of them to the killed one.
                assert kill.done.wait(RACE_DEADLINE_SECONDS), "the kill did not happen"
            events = bulk_batch(phase, number, batch)
            first = (number + batch) % len(cluster.servers)
            order = cluster.servers[first:] + cluster.servers[:first]
            for server in order:
                try:
                    status, body = post(clients[server.name], events)
                except httpx.TransportError:
                    if not server.killed.is_set():
                        raise
                    continue
                answers.append(Answer("bulk", server.name, status, events, body, server is not order[0]))
                if kill is not None:
                    kill.answered(server)
                break
            else:
                pytest.fail(f"no server answered batch {batch} of client {number}")
    finally:
        for client in clients.values():
            client.close()
    return answers


def twin_side(cluster: Cluster, side: int, barrier: threading.Barrier) -> list[Answer]:
    """One side of each twin pair: the same batch, sent to two servers at the same instant."""
    answers = []
    for pair in range(TWIN_PAIRS):
        server = cluster.servers[(pair + side) % len(cluster.servers)]
        barrier.wait(RACE_DEADLINE_SECONDS)
        answers.append(post_one(cluster, server, f"twin-{pair}", twin_batch(pair)))
    return answers


def departure(key: str, on: str, reason: str) -> Event:
    return {
        "type": "cadre.departed",
        "cadre_id": DEPARTING,
        "effective_on": on,
        "source": {"system": "hr", "key": key},
        "reason": reason,
    }


def depart(cluster: Cluster, server: Server, event: Event, barrier: threading.Barrier) -> list[Answer]:
    barrier.wait(RACE_DEADLINE_SECONDS)
    return [post_one(cluster, server, "depart", [event])]


def late_merits(cluster: Cluster, server: Server, barrier: threading.Barrier) -> list[Answer]:
    """Merits dated after both departures, one post at a time, while the departures race elsewhere."""
    barrier.wait(RACE_DEADLINE_SECONDS)
    return [
        post_one(
            cluster,
            server,
            "late",
            [merit(DEPARTING, f"2024-09-{1 + n:02d}", "citation", "unit", f"late-{n}")],
        )
        for n in range(LATE_MERITS)
    ]


def register_late(cluster: Cluster, server: Server, barrier: threading.Barrier) -> list[Answer]:
    event = {
        "type": "cadre.registered",
        "cadre_id": LATE,
        "effective_on": "2024-01-01",
        "source": {"system": "hr", "key": f"reg-{LATE}"},
        "name": "李四",
        "unit_id": "U1",
        "grade": "一级科员",
        "leadership": False,
        "principal": False,
        "service_started_on": "2010-03-01",
        "grade_since": "2020-01-01",
    }
    barrier.wait(RACE_DEADLINE_SECONDS)
    return [post_one(cluster, server, "register", [event])]


def early_merit(cluster: Cluster, server: Server, barrier: threading.Barrier) -> list[Answer]:
    """A merit for a cadre another server is registering: refused until the registration is recorded."""
    event = merit(LATE, "2024-05-01", "citation", "unit", f"early-{LATE}")
    answers = []
    barrier.wait(RACE_DEADLINE_SECONDS)
    deadline = time.monotonic() + RACE_DEADLINE_SECONDS
    with cluster.client(server, "poster") as client:
        while time.monotonic() < deadline:
            status, body = post(client, [event])
            answers.append(Answer("early", server.name, status, [event], body))
            if status != 422:
                return answers
    pytest.fail(f"the merit for {LATE} was refused until the deadline: {answers[-1].body}")


def appraise(cluster: Cluster, server: Server, key: str, barrier: threading.Barrier) -> list[Answer]:
    event = {
        "type": "appraisal.recorded",
        "cadre_id": CADRES[0],
        "effective_on": "2025-01-15",
        "source": {"system": "hr", "key": key},
        "year": 2024,
        "result": "competent",
    }
    barrier.wait(RACE_DEADLINE_SECONDS)
    return [post_one(cluster, server, "appraisal", [event])]


# Reading back.


def whole_log(cluster: Cluster, server: Server) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after: int | None = 0
    with cluster.client(server, "auditor") as client:
        while after is not None:
            page = client.get("/v1/events", params={"after": after, "limit": 1000})
            assert page.status_code == 200, page.text
            events += page.json()["events"]
            after = page.json()["next_after"]
    return events


def read(cluster: Cluster, server: Server, path: str, **params: Any) -> dict[str, Any]:
    with cluster.client(server, "reader") as client:
        response = client.get(path, params=params)
    assert response.status_code == 200, f"{server.name} {path}: {response.text}"
    body: dict[str, Any] = response.json()
    return body


def keys_command(url: str, *arguments: str) -> str:
    """`ledger keys …` as an operator runs it on one of the machines."""
    command = [sys.executable, "-m", "ledger.cli_access", "keys", *arguments, "--database", url]
    done = subprocess.run(command, capture_output=True, env=environment(), timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode()


def status_with(server: Server, token: str) -> int:
    with httpx.Client(base_url=server.base, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        response = client.get(f"/v1/cadres/{CADRES[0]}/history", headers={"Authorization": f"Bearer {token}"})
    return response.status_code


def acknowledgements(answers: list[Answer]) -> dict[tuple[str, str], tuple[str, int, str]]:
    """(system, key) → (event_id, position, points) of every acknowledged item; the same wherever it was
    acknowledged (twins, replays after a fail-over)."""
    acknowledged: dict[tuple[str, str], tuple[str, int, str]] = {}
    for answer in answers:
        if not answer.recorded:
            continue
        for event, item in zip(answer.events, answer.body["results"], strict=True):
            source = (event["source"]["system"], event["source"]["key"])
            placed = (item["event_id"], item["position"], item["points"])
            assert acknowledged.setdefault(source, placed) == placed, f"{source} acknowledged twice apart"
    return acknowledged


def check_order(answers: list[Answer]) -> None:
    """A batch's new events are consecutive, in the order sent; a client's next batch, sent after the
    answer to the previous one, lands after it (on whichever server)."""
    last = 0
    for answer in answers:
        new = [item["position"] for item in answer.body["results"] if not item["replayed"]]
        if new:
            assert new == list(range(new[0], new[0] + len(new))), answer.body
        assert all(position > last for position in new), "a batch sent after an answer landed before it"
        last = max([last, *(item["position"] for item in answer.body["results"])])


def phase_one(cluster: Cluster) -> list[list[Answer]]:
    """Everything at once on three servers: bulk clients, twins, and the races on one cadre's stream."""
    s0, s1, s2 = cluster.servers
    twins, lifecycle, registering, appraising = (threading.Barrier(n) for n in (2, 3, 2, 2))
    tasks: list[Any] = [
        lambda number=number: bulk_client(cluster, 1, number) for number in range(BULK_CLIENTS)
    ]
    tasks += [lambda side=side: twin_side(cluster, side, twins) for side in (0, 1)]
    tasks += [
        lambda: depart(cluster, s0, departure("dep-a", "2024-06-30", "retired"), lifecycle),
        lambda: depart(cluster, s1, departure("dep-b", "2024-08-31", "resigned"), lifecycle),
        lambda: late_merits(cluster, s2, lifecycle),
        lambda: register_late(cluster, s0, registering),
        lambda: early_merit(cluster, s1, registering),
        lambda: appraise(cluster, s1, "appr-a", appraising),
        lambda: appraise(cluster, s2, "appr-b", appraising),
    ]
    with ThreadPoolExecutor(len(tasks)) as pool:
        futures: list[Future[list[Answer]]] = [pool.submit(task) for task in tasks]
        return [future.result() for future in futures]


def check_races(answers: list[Answer], model: Model) -> None:
    """The rules that span a stream held, whichever server decided; adds what was recorded to `model`."""
    by_label: dict[str, list[Answer]] = defaultdict(list)
    for answer in answers:
        by_label[answer.label.split("-")[0]].append(answer)
    for pair in range(TWIN_PAIRS):
        first, second = sorted(
            (a for a in by_label["twin"] if a.label == f"twin-{pair}"), key=lambda a: a.status
        )
        assert (first.status, second.status) == (200, 201), (first.body, second.body)
        assert [i["replayed"] for i in first.body["results"]] == [True] * TWIN_SIZE
        assert [i["replayed"] for i in second.body["results"]] == [False] * TWIN_SIZE
        for replayed, recorded in zip(first.body["results"], second.body["results"], strict=True):
            assert {**replayed, "replayed": False} == recorded, "the replay answers with the recorded result"
        for event in second.events:
            model.add(event)
    departures = sorted(by_label["depart"], key=lambda a: a.status)
    assert [a.status for a in departures] == [201, 422], [a.body for a in departures]
    winner, loser = departures
    # The later departure loses to the earlier one on its date; the earlier one to the later as a second.
    later = winner.events[0]["effective_on"] < loser.events[0]["effective_on"]
    expected = "effective_on_must_not_follow_departure" if later else "cadre_must_not_depart_twice"
    assert loser.rule == expected, loser.body
    departed_at = departures[0].body["results"][0]["position"]
    model.departed_on = departures[0].events[0]["effective_on"]
    for late in by_label["late"]:
        if late.recorded:
            assert late.body["results"][0]["position"] < departed_at, "recorded after the departure"
            model.add(late.events[0])
        else:
            assert (late.status, late.rule) == (422, "effective_on_must_not_follow_departure"), late.body
    (registered,) = by_label["register"]
    assert registered.status == 201, registered.body
    *refused, accepted = by_label["early"]
    assert {(a.status, a.rule) for a in refused} <= {(422, "cadre_must_be_registered")}
    assert accepted.status == 201, accepted.body
    assert accepted.body["results"][0]["position"] > registered.body["results"][0]["position"]
    model.add(accepted.events[0])
    appraisals = sorted(by_label["appraisal"], key=lambda a: a.status)
    assert [a.status for a in appraisals] == [201, 422], [a.body for a in appraisals]
    assert appraisals[1].rule == "appraisal_must_be_recorded_once_per_year", appraisals[1].body
    model.add(appraisals[0].events[0])


def test_three_servers_on_one_database_lose_duplicate_and_reorder_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    tokens = seed(postgres_url, (*CADRES, DEPARTING))
    with running(postgres_url, tmp_path, 3, tokens) as cluster:
        s0, s1, s2 = cluster.servers
        model = Model()
        first = phase_one(cluster)
        bulk = [answers for answers in first if answers and answers[0].label == "bulk"]
        assert len(bulk) == BULK_CLIENTS
        for answers in bulk:
            assert [a.status for a in answers] == [201] * BULK_BATCHES, [a.body for a in answers]
            for answer in answers:
                for event in answer.events:
                    model.add(event)
        races = [answer for answers in first if answers and answers[0].label != "bulk" for answer in answers]
        check_races(races, model)
        head = read(cluster, s0, "/health/ready")["position"]
        rankings = [read(cluster, s, "/v1/rankings", min_position=head, limit=1000) for s in cluster.servers]
        assert rankings[1] == rankings[0] and rankings[2] == rankings[0], "three servers, one answer"

        # A key made on one machine, with the shell, while the servers run: every server takes it at once.
        issued = json.loads(keys_command(postgres_url, "create", "ops", "--role", "reader", "-f", "json"))
        assert [status_with(s, issued["token"]) for s in cluster.servers] == [200, 200, 200]

        # Kill one server with SIGKILL while every client posts through all three.
        kill = Kill(s2, after=2)
        tasks: list[Any] = [lambda n=n: bulk_client(cluster, 2, n, kill) for n in range(BULK_CLIENTS)]
        with ThreadPoolExecutor(len(tasks) + 1) as pool:
            killing = pool.submit(kill.run)
            second = [future.result() for future in [pool.submit(task) for task in tasks]]
            killing.result()
        assert s2.process is not None and s2.process.returncode == -signal.SIGKILL
        for answers in second:
            assert all(a.recorded for a in answers), [a.body for a in answers if not a.recorded]
            assert all(a.status == 201 for a in answers if not a.failed_over), "only a fail-over may replay"
            for answer in answers:
                for event in answer.events:
                    model.add(event)
        failed_over = sum(a.failed_over for answers in second for a in answers)
        assert failed_over >= BULK_CLIENTS, "every client sent a batch to the killed server after the kill"
        assert {a.server for answers in second for a in answers if a.failed_over} <= {"s0", "s1"}
        assert (
            read(cluster, s0, "/health/ready")["position"] == read(cluster, s1, "/health/ready")["position"]
        )

        # The killed machine comes back and catches up from the database.
        s2.start()
        ready = s2.wait_until_ready()
        head = read(cluster, s0, "/health/ready")["position"]
        assert (ready["position"], ready["read_models_position"]) == (head, head)
        assert status_with(s2, issued["token"]) == 200
        keys_command(postgres_url, "revoke", "ops")
        assert [status_with(s, issued["token"]) for s in cluster.servers] == [401, 401, 401]

        head = read(cluster, s0, "/health/ready")["position"]  # the revocation is in the log too
        everything = [answer for answers in [*first, *second] for answer in answers]
        check_log(cluster, everything, model)
        check_reads(cluster, model, head)
        for answers in [*bulk, *second]:
            check_order(answers)
    for log in sorted(tmp_path.glob("s*.log")):
        assert "Traceback" not in log.read_text(errors="replace"), log.read_text(errors="replace")


def check_log(cluster: Cluster, answers: list[Answer], model: Model) -> None:
    """The log, as every server serves it: dense, each source once, every acknowledgement in place, the
    cap held event by event, and the chain verifies."""
    logs = [whole_log(cluster, server) for server in cluster.servers]
    assert logs[1] == logs[0] and logs[2] == logs[0], "every server serves the same log"
    log = logs[0]
    assert [entry["position"] for entry in log] == list(range(1, len(log) + 1)), "dense, no duplicates"
    sources = Counter((e["event"]["source"]["system"], e["event"]["source"]["key"]) for e in log)
    assert max(sources.values()) == 1, [source for source, n in sources.items() if n > 1]
    placed = {
        (e["event"]["source"]["system"], e["event"]["source"]["key"]): (
            e["event"]["event_id"],
            e["position"],
            e["event"].get("points"),
        )
        for e in log
    }
    acknowledged = acknowledgements(answers)
    for source, where in acknowledged.items():
        assert placed.get(source) == where, (
            f"acknowledged {source} at {where}, the log says {placed.get(source)}"
        )
    cadre_events = {
        s
        for s, (_i, p, _pts) in placed.items()
        if not log[p - 1]["event"]["type"].startswith(("key.", "policy."))
    }
    seeded = {("hr", f"reg-{cadre}") for cadre in (*CADRES, DEPARTING)}
    assert cadre_events == seeded | set(acknowledged), "nothing recorded that no one was told of"
    refused = {
        (e["source"]["system"], e["source"]["key"]) for a in answers if not a.recorded for e in a.events
    }
    # (The early merit is refused under its key until the registration is in, then recorded under it.)
    assert not (refused - set(acknowledged)) & set(placed), "a refused event was recorded"
    year_points: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for entry in log:
        event = entry["event"]
        if event["type"] == "merit.awarded":
            points = Decimal(event["points"])
            assert Decimal(0) <= points <= NOMINAL[(event["award"], event["level"])], event
            year_points[(event["cadre_id"], int(event["effective_on"][:4]))] += points
    assert dict(year_points) == {key: model.merit(*key) for key in model.merits}, "the cap, event by event"
    for cadre in CADRES:
        assert model.merits[(cadre, 2024)] > MERIT_CAP > model.merits[(cadre, 2025)], (
            "the workload tests the cap"
        )
    for server in cluster.servers:
        report = read_as(cluster, server, "auditor", "/v1/audit/verify")
        assert (report["ok"], report["verified_through"]) == (True, len(log)), report


def read_as(cluster: Cluster, server: Server, role: str, path: str, **params: Any) -> dict[str, Any]:
    with cluster.client(server, role) as client:
        response = client.get(path, params=params)
    assert response.status_code == 200, f"{server.name} {path}: {response.text}"
    body: dict[str, Any] = response.json()
    return body


def check_reads(cluster: Cluster, model: Model, head: int) -> None:
    """Every server's read models and histories, caught up to `head`, agree with each other and the model."""
    rankings = [read(cluster, s, "/v1/rankings", min_position=head, limit=1000) for s in cluster.servers]
    assert rankings[1] == rankings[0] and rankings[2] == rankings[0], "three servers, one ranking"
    assert rankings[0]["position"] == head
    totals = {entry["cadre_id"]: Decimal(entry["total"]) for entry in rankings[0]["entries"]}
    assert totals == {cadre: model.total(cadre) for cadre in (*CADRES, LATE)}
    # Behind a load balancer without sticky sessions, each page of a ranking may come from another server.
    pages, cursor, turn = [], None, 0
    while cursor is not None or not pages:
        server = cluster.servers[turn % len(cluster.servers)]
        page = read(
            cluster,
            server,
            "/v1/rankings",
            min_position=head,
            limit=4,
            **({"cursor": cursor} if cursor else {}),
        )
        pages.append(page["entries"])
        cursor, turn = page["next_cursor"], turn + 1
    assert [entry for page in pages for entry in page] == rankings[0]["entries"]
    for cadre in (*CADRES, DEPARTING, LATE):
        histories = [read(cluster, s, f"/v1/cadres/{cadre}/history", limit=1000) for s in cluster.servers]
        assert histories[1] == histories[0] and histories[2] == histories[0], cadre
        assert Decimal(histories[0]["total"]) == model.total(cadre), cadre
    views = [read(cluster, s, f"/v1/cadres/{DEPARTING}", min_position=head) for s in cluster.servers]
    assert views[1] == views[0] and views[2] == views[0]
    assert (views[0]["status"], views[0]["departed_on"]) == ("departed", model.departed_on)
    assert Decimal(views[0]["total"]) == model.total(DEPARTING)


def cut_log(url: str, kept: int) -> list[int]:
    """Delete the events and chain rows after position `kept` in one statement (no reader sees half of
    it), as a standby promoted without its last commits would hold the log; the positions deleted."""
    rows = raw_sql(
        url,
        "WITH gone AS (DELETE FROM ledger_chain WHERE position > ? RETURNING position) "
        "DELETE FROM {events} WHERE {pos} IN (SELECT position FROM gone) RETURNING {pos}",
        (kept,),
    )
    return sorted(row[0] for row in rows)


def test_a_log_cut_back_behind_running_servers_is_detected_and_served_as_it_now_is(
    postgres_url: str, tmp_path: Path
) -> None:
    """What a replica meets after a failover to a standby that lacked the last commits: the log ends
    earlier than it folded (the events and chain rows after position `kept` are deleted in one statement,
    behind the servers' backs). Each server's writer logs CRITICAL and decides from the log as it now is
    (a cadre at its cap before the cut has room again); its read models refuse to serve (503), rebuild,
    and then answer from the shorter log; the lost events, posted again under their source keys, are
    recorded anew."""
    first_class = ("merit_first_class", "municipal")
    c0, c1 = CADRES[:2]
    tokens = seed(postgres_url, CADRES[:3])
    with running(postgres_url, tmp_path, 2, tokens) as cluster:
        s0, s1 = cluster.servers
        with cluster.client(s0, "poster") as p0, cluster.client(s1, "poster") as p1:
            status, body = post(
                p0,
                [
                    merit(c0, "2024-02-01", *first_class, "kept-1"),
                    merit(c0, "2024-03-01", *first_class, "kept-2"),
                    criticism(c1, "2024-03-01", "kept-3"),
                ],
            )
            assert status == 201, body
            kept = body["position"]
            lost = [
                merit(c0, "2024-05-01", *first_class, "lost-1"),
                merit(c1, "2024-05-01", "citation", "municipal", "lost-2"),
            ]
            status, body = post(p1, lost)
            assert (status, [i["points"] for i in body["results"]]) == (201, ["10.00", "2.00"]), body
            status, body = post(p0, [merit(c0, "2024-06-01", *first_class, "lost-3")])
            assert (status, body["results"][0]["points"]) == (201, "0.00"), "capped at 30.00"
            head = body["position"]
            for server in cluster.servers:
                ranking = read(cluster, server, "/v1/rankings", min_position=head)
                assert {e["cadre_id"]: e["total"] for e in ranking["entries"]}[c0] == "30.00"

            # The failover: the log loses its last commits.
            cut = cut_log(postgres_url, kept)
            assert cut == list(range(kept + 1, head + 1))

            # Read models: no read is served from what the log no longer holds. The first server asked finds
            # it (503 while it rebuilds); the other may find that rebuild done and answer from it.
            for server in cluster.servers:
                with cluster.client(server, "reader") as reader:
                    first = reader.get("/v1/rankings")
                    if server is s0 or first.status_code != 200:
                        assert first.status_code == 503, first.text
                        assert "Retry-After" in first.headers and "went backwards" in first.json()["detail"]
                    else:
                        assert first.json()["position"] == kept, first.text
                    beyond = reader.get("/v1/rankings", params={"min_position": head})
                    assert (beyond.status_code, beyond.json()["rule"]) == (422, "min_position_beyond_log")
            for server in cluster.servers:
                ready = server.wait_until_ready()
                assert (ready["position"], ready["read_models_position"]) == (kept, kept)
                ranking = read(cluster, server, "/v1/rankings", min_position=kept)
                totals = {e["cadre_id"]: e["total"] for e in ranking["entries"]}
                assert (ranking["position"], totals[c0], totals[c1]) == (kept, "20.00", "-1.00")
                history = read(cluster, server, f"/v1/cadres/{c0}/history")
                assert [e["source"]["key"] for e in history["entries"]] == [f"reg-{c0}", "kept-1", "kept-2"]

            # The writers: each decides from the log as it now is, not from what it folded before.
            status, body = post(p0, [merit(c0, "2024-07-01", *first_class, "after-cut")])
            assert (status, body["results"][0]["position"], body["results"][0]["points"]) == (
                201,
                kept + 1,
                "10.00",
            )
            status, body = post(p1, lost)
            assert status == 201 and [i["replayed"] for i in body["results"]] == [False, False], body
            assert [i["points"] for i in body["results"]] == ["0.00", "2.00"], "the cap counts the new merit"
            status, replayed = post(p0, lost)
            assert status == 200 and replayed["results"] == [{**i, "replayed": True} for i in body["results"]]
        head = kept + 3
        for server in cluster.servers:
            report = read_as(cluster, server, "auditor", "/v1/audit/verify")
            assert (report["ok"], report["verified_through"]) == (True, head), report
        rankings = [read(cluster, s, "/v1/rankings", min_position=head) for s in cluster.servers]
        assert rankings[1] == rankings[0]
        totals = {e["cadre_id"]: e["total"] for e in rankings[0]["entries"]}
        assert (totals[c0], totals[c1]) == ("30.00", "1.00")
    for server in cluster.servers:
        output = server.output()
        assert "CRITICAL ledger: the log no longer holds what this writer folded" in output, output
        assert "Traceback" not in output, output
    assert "CRITICAL ledger.projections: read models refused" in s0.output()
    assert "the log went backwards" in s0.output()


def test_a_key_made_after_a_failover_that_lost_a_key_event_is_taken_by_a_running_server(
    postgres_url: str, tmp_path: Path
) -> None:
    tokens = seed(postgres_url, CADRES[:1])
    with running(postgres_url, tmp_path, 1, tokens) as cluster:
        (server,) = cluster.servers
        kept = read(cluster, server, "/health/ready")["position"]
        lost = json.loads(keys_command(postgres_url, "create", "lost", "--role", "reader", "-f", "json"))
        assert status_with(server, lost["token"]) == 200  # the server has folded the key stream with it
        # The standby lacked the key's event and its row alike.
        assert cut_log(postgres_url, kept) == [kept + 1]
        raw_sql(postgres_url, "DELETE FROM ledger_keys WHERE principal = 'lost'")
        made = json.loads(keys_command(postgres_url, "create", "made", "--role", "reader", "-f", "json"))
        assert [status_with(server, made["token"]), status_with(server, lost["token"])] == [200, 401]
