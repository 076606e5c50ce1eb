"""What the handlers work with: the ledger, its key store and its read models, opened once per process.

The read models (`Projections`) may take a while to load and catch up on a large log, so they open on a
thread of their own while the process already answers `/health/live`; until they are open, read-model
routes answer 503 and `/health/ready` says not ready. Once open, every read catches them up with the log
first (`Projections` does), so posts from any process are seen by the next read.

If the persisted facts or the log stop agreeing with what the read models folded (an altered row, a log
restored to an earlier state, a `projection_meta` row that names no version, a facts table dropped), or
`GET /v1/audit/verify?read_models=true` finds a disagreement, `Projections` logs it at CRITICAL and rebuilds
in the background; meanwhile read-model routes and `/health/ready` answer 503 with Retry-After, and nothing
is served from them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final

from ledger.access import KeyStore
from ledger.api.problems import ReadModelsUnavailable
from ledger.domain.errors import InvalidInput
from ledger.ledger import Ledger
from ledger.projections.service import Projections
from ledger.signing import Signer

__all__ = ["ReadModels", "Services"]

STOP_WAIT_SECONDS: Final = 30.0

logger = logging.getLogger("ledger.api")


def open_serving(ledger: Ledger, stop: threading.Event | None = None) -> Projections:
    """The read models as a server keeps them: a disagreement with the log is rebuilt in the background
    while reads answer 503, rather than inside the read that found it. `stop` abandons the open."""
    return Projections.open(ledger, repair_in_background=True, stop=stop)


class ReadModels:
    """The projections of one ledger, opened in the background."""

    def __init__(self, ledger: Ledger, opener: Callable[[Ledger], Projections] | None = None) -> None:
        self._ledger = ledger
        # Set on close: an open still rebuilding (or waiting for another process's rebuild) is abandoned at
        # its next page, so stopping a server does not wait for it.
        self._stop = threading.Event()
        self._opener = opener or (lambda ledger: open_serving(ledger, self._stop))
        self._projections: Projections | None = None
        self._failure: str | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the read models in the background (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ledger-read-models", daemon=True)
            self._thread.start()

    def wait(self, timeout: float) -> bool:
        """Wait until the read models are open (True) or failed or `timeout` seconds passed (False)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._projections is not None

    def _run(self) -> None:
        try:
            projections = self._opener(self._ledger)
        except Exception as error:
            if self._stop.is_set():
                return  # abandoned by close
            self._failure = f"the read models failed to open: {type(error).__name__}: {error}"
            logger.exception("the read models failed to open")
            return
        self._projections = projections
        logger.info("read models open at position %d", projections.position())

    def get(self) -> Projections:
        """The open projections, or ReadModelsUnavailable (503) while they load, after they failed, or while
        they are rebuilt from the log."""
        projections = self._projections
        if projections is None:
            raise ReadModelsUnavailable(self._failure or "the read models are loading; try again shortly")
        damage = projections.unavailable()
        if damage is not None:
            raise ReadModelsUnavailable(_rebuilding(damage))
        return projections

    def opened(self) -> Projections | None:
        """The projections if they are open (whether or not they may be served now)."""
        return self._projections

    def position(self) -> int | None:
        return None if self._projections is None else self._projections.position()

    def ready(self) -> int:
        """The read models' position if they may be served; else ReadModelsUnavailable. Checks that the log
        still holds what they folded (a rebuild starts if it does not)."""
        projections = self._projections
        if projections is None:
            raise ReadModelsUnavailable(self._failure or "the read models are loading")
        damage = projections.health()
        if damage is not None:
            raise ReadModelsUnavailable(_rebuilding(damage))
        return projections.position()

    @property
    def failure(self) -> str | None:
        return self._failure

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_WAIT_SECONDS)
        if self._projections is not None:
            self._projections.close()
            self._projections = None


def _rebuilding(damage: str) -> str:
    return f"the read models are being rebuilt from the log ({damage}); try again shortly"


class Services:
    """The ledger, its keys and its read models, for one process."""

    def __init__(
        self, ledger: Ledger, keys: KeyStore, read_models: ReadModels, signer: Signer | None = None
    ) -> None:
        self.ledger = ledger
        self.keys = keys
        self.read_models = read_models
        # The checkpoint signing key (`LEDGER_SIGNING_KEY_FILE`), read once at startup.
        self.signer = signer

    @classmethod
    def open(cls, database_url: str) -> Services:
        """The ledger at `database_url`, which must exist: a server never creates one (`ledger serve`
        creates it before the workers start). A worker started after the file was removed or the schema
        dropped fails to start instead of serving a new, empty ledger beside the others."""
        ledger = Ledger.open(database_url, create=False)
        try:
            keys = KeyStore.open(database_url, ledger=ledger)
        except BaseException:
            ledger.close()
            raise
        return cls(ledger, keys, ReadModels(ledger))

    def projections(self, min_position: int | None) -> Projections:
        """The read models, for a read that waits for `min_position`.

        A position the log has not reached is refused at once (422): it is not being written by anyone
        (a post answers only after its commit), so waiting for it would only hold a thread.
        """
        if min_position is not None:
            head = self.ledger.head()
            if min_position > head:
                raise InvalidInput(
                    f"the log ends at position {head}: there is no position {min_position} to wait for",
                    field="min_position",
                    rule="min_position_beyond_log",
                )
        return self.read_models.get()

    def close(self) -> None:
        self.read_models.close()
        self.keys.close()
        self.ledger.close()
