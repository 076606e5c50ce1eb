"""cadre-ledger: an event-sourced points ledger for cadre management.

from ledger import Ledger
with Ledger.open("sqlite:///ledger.db") as book:
    book.post([...])
"""

from ledger.domain.errors import Conflict, IntegrityFailure, InvalidInput, LedgerError, NotFound
from ledger.ledger import Ledger

__all__ = ["Conflict", "IntegrityFailure", "InvalidInput", "Ledger", "LedgerError", "NotFound"]
