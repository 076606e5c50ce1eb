"""`ledger serve`: the app in one process, or in workers forked from a process that built it once.

uvicorn starts its workers with multiprocessing's "spawn": each worker starts a new interpreter, imports
the ledger, Litestar, SQLAlchemy and NumPy again (about 0.6 s) and builds the app again (0.1–0.2 s) before
it opens its read models, two of them at once on a two-core machine. Here the parent imports and builds
the app, then forks: a worker starts with all of it in its (copy-on-write) memory and only opens its read
models. When it forks, the parent holds no open database (it opened the ledger only to check it) and runs
no other thread (`_no_other_threads`): a forked child inherits a copy of every lock, and a lock another
thread held would stay held in the child.

The supervision is uvicorn's own (`Multiprocess`: worker health checks, a dead worker replaced, SIGTERM
and SIGINT forwarded, SIGHUP restarts the workers one by one); only the way a worker process is started
differs (see docs/decisions.md, "Workers are forked from a process that built the app").
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
from typing import Any

import uvicorn
from uvicorn import _subprocess
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess
from uvicorn.supervisors.multiprocess import SIGNALS

from ledger.api.app import create_app

__all__ = ["serve"]


def serve(
    *,
    host: str,
    port: int,
    workers: int,
    log_config: dict[str, Any],
    timeout_graceful_shutdown: int,
) -> None:
    """Serve the API (settings from the environment, as `create_app` reads them) until interrupted."""
    config = uvicorn.Config(
        create_app(),
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_config=log_config,
        # The API logs each request itself (`ledger.api.access`), with the principal.
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=timeout_graceful_shutdown,
    )
    # What is imported and built by now lives as long as the process: out of the collector's sight, the
    # full collection that settles the read models once they are loaded (`projections.service._settle`)
    # walks only what they hold (60 ms instead of 170 on the city), and a forked worker's collections do
    # not write to the pages it shares with the parent (the `gc.freeze` documentation's advice).
    gc.freeze()
    if workers == 1:
        uvicorn.Server(config).run()
        return
    _no_other_threads()
    # uvicorn names the context it starts workers with in one module attribute (`spawn`); a forked
    # worker is given the configuration, the app included, without pickling it.
    _subprocess.spawn = multiprocessing.get_context("fork")  # type: ignore[assignment]
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    # The supervisor queues the signals it handles (HUP, QUIT, USR1 …) for its own loop; a forked worker
    # would inherit those handlers and queue them in a copy nobody reads. A spawned worker started with
    # the defaults, which end it (and the supervisor replaces it): so does a forked one.
    os.register_at_fork(after_in_child=_default_signal_handlers)
    supervisor.run()
    # uvicorn stops every worker when one fails before serving (the app, the database or the signing key
    # is broken, and would fail again), and returns as after a clean stop: exit as one worker does.
    if any(worker.exitcode == STARTUP_FAILURE for worker in supervisor.processes):
        raise SystemExit(STARTUP_FAILURE)


def _default_signal_handlers() -> None:
    """What a new interpreter starts with: Python's KeyboardInterrupt for SIGINT, the system's default
    (which ends the process) for the others."""
    for number in SIGNALS:
        signal.signal(number, signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL)


def _no_other_threads() -> None:
    others = [thread.name for thread in threading.enumerate() if thread is not threading.current_thread()]
    if others:  # pragma: no cover - a defect of ours: the parent must not have opened anything that runs
        raise RuntimeError(f"cannot fork workers while other threads run: {', '.join(others)}")
