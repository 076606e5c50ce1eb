"""Errors of the read models."""

from __future__ import annotations

from ledger.domain.errors import LedgerError

__all__ = ["NotCaughtUp"]


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
