"""What the handlers work with: the ledger, its key store and its read models, opened once per process.

The read models (`Projections`) may take a while to load and catch up on a large log, so they open on a
thread of their own while the process already answers `/health/live`; until they are open, read-model
routes answer 503 and `/health/ready` says not ready. Once open, every read catches them up with the log
first (`Projections` does), so posts from any process are seen by the next read.
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

__all__ = ["ReadModels", "Services"]

STOP_WAIT_SECONDS: Final = 30.0

logger = logging.getLogger("ledger.api")


class ReadModels:
    """The projections of one ledger, opened in the background."""

    def __init__(self, ledger: Ledger, opener: Callable[[Ledger], Projections] = Projections.open) -> None:
        self._ledger = ledger
        self._opener = opener
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
            self._failure = f"the read models failed to open: {type(error).__name__}: {error}"
            logger.exception("the read models failed to open")
            return
        self._projections = projections
        logger.info("read models open at position %d", projections.position())

    def get(self) -> Projections:
        """The open projections, or ReadModelsUnavailable (503) while they load or after they failed."""
        if self._projections is None:
            raise ReadModelsUnavailable(self._failure or "the read models are loading; try again shortly")
        return self._projections

    def position(self) -> int | None:
        return None if self._projections is None else self._projections.position()

    @property
    def failure(self) -> str | None:
        return self._failure

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join(STOP_WAIT_SECONDS)
        if self._projections is not None:
            self._projections.close()
            self._projections = None


class Services:
    """The ledger, its keys and its read models, for one process."""

    def __init__(self, ledger: Ledger, keys: KeyStore, read_models: ReadModels) -> None:
        self.ledger = ledger
        self.keys = keys
        self.read_models = read_models

    @classmethod
    def open(cls, database_url: str) -> Services:
        ledger = Ledger.open(database_url)
        try:
            keys = KeyStore.open(database_url)
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
