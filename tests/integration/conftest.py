"""Fixtures shared by the integration tests of this folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger import Ledger
from tests.conftest import fixed_clock


@pytest.fixture
def two(store_url: str) -> Iterator[tuple[Ledger, Ledger]]:
    """Two ledgers on one store: two writers, as two processes would have."""
    first = Ledger.open(store_url, clock=fixed_clock)
    second = Ledger.open(store_url, clock=fixed_clock)
    try:
        yield first, second
    finally:
        first.close()
        second.close()
