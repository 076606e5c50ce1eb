"""Errors of the read models."""

from __future__ import annotations

from ledger.domain.errors import LedgerError

__all__ = ["NotCaughtUp", "ReadModelsDamaged", "ReadModelsRebuilding"]


class NotCaughtUp(LedgerError):
    """Raised when a read asks for `min_position` and the read models do not reach it within the wait."""

    def __init__(self, min_position: int, position: int, waited_seconds: float) -> None:
        self.min_position = min_position
        self.position = position
        self.waited_seconds = waited_seconds
        super().__init__(
            f"the read models are at position {position}, not yet at {min_position} "
            f"(waited {waited_seconds:.1f} s); try again shortly"
        )


class ReadModelsRebuilding(LedgerError):
    """Raised by a read while the read models are being rebuilt from the log because what was persisted or
    folded no longer agreed with it (HTTP 503 with Retry-After): they are never served meanwhile."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the read models are being rebuilt from the log ({reason}); try again shortly")


class ReadModelsDamaged(Exception):
    """Raised inside the read models when persisted facts or the log disagree with what they folded:
    `version`, the log `position` concerned and what differed. `Projections` catches it, logs it at
    CRITICAL and rebuilds; it does not reach callers."""

    def __init__(self, version: int, position: int, what: str) -> None:
        self.version = version
        self.position = position
        self.what = what
        super().__init__(f"read models version {version} at position {position}: {what}")
