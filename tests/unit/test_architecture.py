"""Imports point inward: the domain and the policy know nothing of storage, HTTP or the CLI."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src" / "ledger"
OUTSIDE_ALLOWED = {"msgspec", "eventsourcing.domain"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def allowed(name: str, inward: tuple[str, ...]) -> bool:
    root = name.split(".", maxsplit=1)[0]
    return (
        name.startswith(inward)
        or root in sys.stdlib_module_names
        or name in OUTSIDE_ALLOWED
        or root == "msgspec"
    )


def test_domain_and_policy_import_only_the_standard_library_msgspec_and_inward() -> None:
    for package, inward in (("domain", ("ledger.domain",)), ("policy", ("ledger.domain", "ledger.policy"))):
        for path in (SOURCE / package).glob("*.py"):
            for name in imports_of(path):
                assert allowed(name, inward), f"{package}/{path.name} imports {name}"


def test_integrity_does_not_import_the_store_or_the_faces() -> None:
    for path in (SOURCE / "integrity").glob("*.py"):
        for name in imports_of(path):
            assert not name.startswith(
                ("ledger.store", "ledger.api", "ledger.projections", "sqlite3", "psycopg", "litestar")
            ), f"{path.name} imports {name}"
