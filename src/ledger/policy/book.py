"""The policy book: every published policy, and which one is in force on a given day.

Policies are published into the log (`policy.published`), each with a version, the day it takes
effect and the log position of its publication. The policy in force on a day is the one with the
latest `effective_from` on or before that day; when two take effect the same day, the later
publication wins — a correction is made by publishing again, never by editing. A version is
published once: publishing it again with the same content is harmless (the original stands), with
other content it is refused.

The book is a plain in-memory value, filled by whoever reads the log; it does no I/O itself.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Iterator
from datetime import date
from typing import Final

from msgspec import Struct

from ledger.domain.errors import InvalidInput, NotFound
from ledger.policy.schema import Policy

__all__ = ["PolicyBook", "PublishedPolicy"]

# Greater than any log position, so a bisection on (day, this) lands after every policy of that day.
_POSITION_AFTER_ALL: Final = 2**63


class PublishedPolicy(Struct, frozen=True):
    """A policy as published: its version, the day it takes effect and its position in the log."""

    version: str
    effective_from: date
    position: int
    policy: Policy


def _order(published: PublishedPolicy) -> tuple[date, int]:
    return published.effective_from, published.position


class PolicyBook:
    """The published policies, by version and in the order they take effect."""

    def __init__(self) -> None:
        self._by_version: dict[str, PublishedPolicy] = {}
        # Sorted by (effective_from, position), so the last entry on or before a day is the one in
        # force.
        self._in_order: list[PublishedPolicy] = []

    def add(self, version: str, effective_from: date, position: int, policy: Policy) -> PublishedPolicy:
        """Record a publication; the stored publication is returned.

        Raises InvalidInput when the version or effective date disagrees with the policy's own
        header (`policy_version_mismatch`, `policy_effective_from_mismatch`), or when the version
        was published before with other content or another effective date (`policy_version_exists`).
        """
        if version != policy.version:
            raise InvalidInput(
                f"the publication says version {version} but the policy says {policy.version}",
                field="version",
                rule="policy_version_mismatch",
            )
        if effective_from != policy.effective_from:
            raise InvalidInput(
                f"the publication says effective from {effective_from} but the "
                f"policy says {policy.effective_from}",
                field="effective_from",
                rule="policy_effective_from_mismatch",
            )
        existing = self._by_version.get(version)
        if existing is not None:
            if existing.policy == policy and existing.effective_from == effective_from:
                return existing
            raise InvalidInput(
                f"policy version {version} was published at position "
                f"{existing.position} with other content; publish a new version",
                field="version",
                rule="policy_version_exists",
            )
        published = PublishedPolicy(version, effective_from, position, policy)
        self._by_version[version] = published
        insort(self._in_order, published, key=_order)
        return published

    def copy(self) -> PolicyBook:
        """Another book holding the same publications, to which publications can be added apart."""
        book = PolicyBook()
        book._by_version = dict(self._by_version)
        book._in_order = list(self._in_order)
        return book

    def in_force(self, on: date) -> PublishedPolicy:
        """The policy in force on `on`: latest `effective_from` ≤ `on`, then the latest position.

        Raises InvalidInput (`no_policy_in_force`) when no policy takes effect on or before `on`.
        """
        index = bisect_right(self._in_order, (on, _POSITION_AFTER_ALL), key=_order)
        if index == 0:
            raise InvalidInput(
                f"no policy is in force on {on}", field="effective_on", rule="no_policy_in_force"
            )
        return self._in_order[index - 1]

    def get(self, version: str) -> PublishedPolicy:
        """The publication of `version`; raises NotFound when there is none."""
        try:
            return self._by_version[version]
        except KeyError:
            raise NotFound(f"no policy version {version}") from None

    def __contains__(self, version: object) -> bool:
        return version in self._by_version

    def __iter__(self) -> Iterator[PublishedPolicy]:
        """The publications in the order they take effect."""
        return iter(self._in_order)

    def __len__(self) -> int:
        return len(self._in_order)
