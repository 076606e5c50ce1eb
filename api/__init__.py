"""The audit API (installed as `ledger.api`): a Litestar application over the library."""
