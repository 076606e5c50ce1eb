"""The audit API (installed as `ledger.api`): a Litestar application over the library.

`create_app()` is the factory (`uvicorn --factory ledger.api:create_app`, or `ledger serve`); routes,
roles and errors are SPEC §9, described in docs/api.md and at `/schema` of a running server.
"""

from ledger.api.app import create_app
from ledger.api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
