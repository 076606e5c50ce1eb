"""The ledger's errors: one root and four branches, each named after what the caller can do about it.

Refusals carry a `rule` (a stable snake_case name such as `effective_on_must_not_be_in_future`) and a
`field` (the JSON path of the offending value) so that every face — Python, CLI, HTTP — can tell the user
exactly what to change.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "IntegrityFailure",
    "InvalidInput",
    "LedgerError",
    "NotFound",
    "StoreUnavailable",
]


class LedgerError(Exception):
    """Root of every error the ledger raises on purpose."""


class InvalidInput(LedgerError):
    """Raised when input breaks a rule; nothing is recorded.

    `item` is the index of the offending event in its batch (None outside a batch), `field` the path of
    the offending value inside that item, `rule` the name of the rule it breaks.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        rule: str = "invalid_input",
        item: int | None = None,
    ) -> None:
        self.message = message
        self.field = field
        self.rule = rule
        self.item = item
        super().__init__(self.describe())

    def describe(self) -> str:
        where = []
        if self.item is not None:
            where.append(f"item {self.item}")
        if self.field:
            where.append(f"field `{self.field}`")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message} [{self.rule}]" if prefix else f"{self.message} [{self.rule}]"

    def at_item(self, item: int) -> InvalidInput:
        """The same refusal, located at `item` of a batch."""
        return InvalidInput(self.message, field=self.field, rule=self.rule, item=item)


class NotFound(LedgerError):
    """Raised when a cadre, event or policy that was asked for does not exist."""


class Conflict(LedgerError):
    """Raised when an idempotency key is reused with other content (`exists_with_different_content`).

    Nothing of the batch is recorded.
    """

    def __init__(self, message: str, *, item: int | None = None, system: str = "", key: str = "") -> None:
        self.item = item
        self.system = system
        self.key = key
        self.rule = "exists_with_different_content"
        super().__init__(message)


class IntegrityFailure(LedgerError):
    """Raised when stored data fails verification (a broken chain, a bad import, a checkpoint the log
    no longer extends)."""

    def __init__(self, message: str, *, position: int | None = None, reason: str = "") -> None:
        self.position = position
        self.reason = reason
        super().__init__(message)


class StoreUnavailable(LedgerError):
    """Raised when the database cannot record now: its write lock is held elsewhere, the file is read-only,
    the connection dropped mid-append, or the clocks disagree. Nothing was recorded (or, for a connection
    lost at commit, the outcome is unknown and a retry with the same source keys is safe); try again after
    `retry_after` seconds. `cause` is one word: `lock_busy`, `read_only`, `connection_lost`, `clock_skew`.
    """

    def __init__(self, message: str, *, cause: str, retry_after: int = 1) -> None:
        self.cause = cause
        self.retry_after = retry_after
        super().__init__(message)
