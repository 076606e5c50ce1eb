"""Exhaustive tamper evidence for the key table: every single-row change to `ledger_keys` is detected by
`KeyStore.check_against_log` or harmless, on SQLite and PostgreSQL.

Method: a small ledger with six keys (a poster, a reader, an auditor, an admin, a revoked reader and a
demo reader), whose tokens the test holds, and an attacker's secret. For each case the table is restored
to its pristine rows, one change is made with SQL behind the ledger's back, and then:

- `detected`: `check_against_log` reports a finding for a row the change touched;
- `harmless`: every token authenticates as before or is refused — no token gains a key, a role, a system,
  an event type or a principal the log does not give it, and no revoked key comes back.

Every case must be harmless (the key store never trusts the table over the log); each is counted as
detected or not. The cases: each column of each row set to each of a few other values (`key_id`, the
secret's hash — the attacker's, the same digest in capitals —, `principal`, `role`, `system`,
`event_types`, `created_at`, `revoked_at`, `demo`), each row deleted, and rows inserted (a new key of each
role with the attacker's hash, a copy of each row under a new id). Counts are printed (run with `-s`) and
recorded as the junit property `tamper_counts`; docs/reliability.md quotes them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from ledger import Ledger
from ledger.access import ApiKey, KeyStore, Role
from tests.conftest import fixed_clock
from tests.support import raw_sql

COLUMNS = (
    "key_id",
    "secret_sha256",
    "principal",
    "role",
    "system",
    "event_types",
    "created_at",
    "revoked_at",
    "demo",
)
ATTACKER_SECRET = "X" * 43
ATTACKER_HASH = hashlib.sha256(ATTACKER_SECRET.encode()).hexdigest()
NEW_ID = "feedfacecafe0001"
SELECT = f"SELECT {', '.join(COLUMNS)} FROM ledger_keys ORDER BY key_id"
INSERT = f"INSERT INTO ledger_keys ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def issue(keys: KeyStore) -> dict[str, str]:
    tokens = {
        "poster": keys.create(
            "hr-sync", Role.poster, system="hr", event_types=["cadre.registered", "merit.awarded"]
        ).token,
        "reader": keys.create("reader", Role.reader).token,
        "auditor": keys.create("auditor", Role.auditor).token,
        "admin": keys.create("admin", Role.admin).token,
        "revoked": keys.create("former", Role.reader).token,
        "demo": keys.create("demo-reader", Role.reader, demo=True).token,
    }
    keys.revoke("former")
    return tokens


def other_values(column: str, row: dict[str, Any], store: str) -> list[Any]:
    """The values a case writes into `column` of `row` instead of its own."""
    value = row[column]
    if column == "key_id":
        return [NEW_ID]
    if column == "secret_sha256":
        return [ATTACKER_HASH, value.upper()]
    if column == "principal":
        return ["admin" if value != "admin" else "reader", "intruder", value + "\n"]
    if column == "role":
        return [role.value for role in Role if role.value != value] + ["superuser"]
    if column == "system":
        return ["discipline", "ledger.accrue"] if value is not None else ["hr"]
    if column == "event_types":
        return ["", "cadre.registered deduction.applied merit.awarded", "merit.awarded", "policy.published"]
    if column == "created_at":
        return ["2025-12-15T02:00:01.000000Z", value.replace(".000000Z", "Z"), "2020-01-01T00:00:00.000000Z"]
    if column == "revoked_at":
        return ["2025-12-15T02:00:00.000000Z"] if value is None else [None, "2030-01-01T00:00:00.000000Z"]
    if column == "demo":
        flipped = not bool(value)
        return [flipped, 2] if store == "sqlite" else [flipped]
    raise AssertionError(column)


def same_effect(before: ApiKey | None, after: ApiKey | None) -> bool:
    """Harmless: a token authenticates as it did, or is refused."""
    return after is None or after == before


def run_store(url: str, store: str, record_property: Callable[[str, object], None]) -> None:
    with (
        Ledger.open(url, clock=fixed_clock) as ledger,
        KeyStore.open(url, ledger=ledger, clock=fixed_clock) as keys,
    ):
        tokens = issue(keys)
        assert keys.check_against_log() == []
        pristine_rows = raw_sql(url, SELECT)
        pristine = [dict(zip(COLUMNS, row, strict=True)) for row in pristine_rows]
        key_ids = [row["key_id"] for row in pristine]
        # Tokens an attacker could present: the real ones, and the attacker's secret under every id.
        probes = dict(tokens)
        for key_id in [*key_ids, NEW_ID]:
            probes[f"attacker@{key_id}"] = f"cl_{key_id}_{ATTACKER_SECRET}"
        baseline = {name: keys.authenticate(token) for name, token in probes.items()}
        assert sum(key is not None for key in baseline.values()) == 5, "five active keys, nothing else"

        def restore() -> None:
            raw_sql(url, "DELETE FROM ledger_keys")
            for row in pristine_rows:
                raw_sql(url, INSERT, tuple(row))

        counts: Counter[str] = Counter()
        harmful: list[str] = []

        def case(kind: str, name: str, statement: str, params: tuple[Any, ...], touched: set[str]) -> None:
            restore()
            raw_sql(url, statement, params)
            findings = keys.check_against_log()
            effects = {probe: keys.authenticate(token) for probe, token in probes.items()}
            if not all(same_effect(baseline[probe], effects[probe]) for probe in probes):
                harmful.append(f"{kind} {name}: {effects}")
            detected = any(finding.row.removeprefix("key ") in touched for finding in findings)
            counts[f"{kind} {'detected' if detected else 'harmless, not detected'}"] += 1
            # A key whose row was touched is refused, unless the change left its row as the log has it.
            for probe, token in tokens.items():
                if token.split("_")[1] in touched and findings:
                    assert effects[probe] is None, f"{kind} {name}: {probe} still authenticates"

        for row in pristine:
            key_id = row["key_id"]
            for column in COLUMNS:
                for value in [v for v in other_values(column, row, store) if v != row[column]]:
                    case(
                        f"alter {column}",
                        f"{row['principal']}={value!r}",
                        f"UPDATE ledger_keys SET {column} = ? WHERE key_id = ?",
                        (value, key_id),
                        {key_id, value} if column == "key_id" else {key_id},
                    )
            case("delete", row["principal"], "DELETE FROM ledger_keys WHERE key_id = ?", (key_id,), {key_id})
            copy = dict(row, key_id=NEW_ID, secret_sha256=ATTACKER_HASH)
            case("insert", f"copy of {row['principal']}", INSERT, tuple(copy[c] for c in COLUMNS), {NEW_ID})
        for role in Role:
            forged = dict(
                pristine[0],
                key_id=NEW_ID,
                secret_sha256=ATTACKER_HASH,
                principal="intruder",
                role=role.value,
                system="hr" if role is Role.poster else None,
                event_types="merit.awarded" if role is Role.poster else "",
                revoked_at=None,
            )
            case("insert", f"new {role.value}", INSERT, tuple(forged[c] for c in COLUMNS), {NEW_ID})
        restore()
        assert keys.check_against_log() == []
    tried = sum(counts.values())
    detected = sum(count for kind, count in counts.items() if not kind.endswith("not detected"))
    print(f"\n{store}: {detected} of {tried} detected, {tried - len(harmful)} of {tried} harmless")
    for kind, count in sorted(counts.items()):
        print(f"  {kind}: {count}")
    record_property("tamper_counts", {"store": store, "tried": tried, "detected": detected, **counts})
    assert harmful == []
    assert detected == tried, f"undetected: {[kind for kind in counts if kind.endswith('not detected')]}"


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_every_single_row_change_to_the_key_table_is_detected_and_harmless(
    store: str, request: pytest.FixtureRequest, record_property: Callable[[str, object], None]
) -> None:
    url = request.getfixturevalue("sqlite_url" if store == "sqlite" else "postgres_url")
    run_store(url, store, record_property)
