"""API keys: stored only as hashes, checked in constant time, revocable; and `ledger keys …` in the shell."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from ledger import InvalidInput, NotFound
from ledger.access import ApiKey, KeyStore, Role, role_allows
from ledger.cli_access import _standalone

runner = CliRunner()


@pytest.fixture
def keys(store_url: str) -> KeyStore:
    store = KeyStore.open(store_url)
    yield store  # type: ignore[misc]
    store.close()


def test_a_created_key_authenticates_and_only_its_hash_is_stored(keys: KeyStore, store_url: str) -> None:
    issued = keys.create("hr-sync", Role.poster, system="hr", event_types=["merit.awarded"])
    assert issued.token.startswith(f"cl_{issued.key.key_id}_")
    authenticated = keys.authenticate(issued.token)
    assert isinstance(authenticated, ApiKey)
    assert (authenticated.principal, authenticated.role, authenticated.system) == (
        "hr-sync",
        Role.poster,
        "hr",
    )
    secret = issued.token.split("_", 2)[2]
    with keys._engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM ledger_keys")).all()
    assert all(secret not in str(row) for row in rows)


def test_a_wrong_secret_an_unknown_id_and_a_malformed_token_do_not_authenticate(keys: KeyStore) -> None:
    issued = keys.create("reader", Role.reader)
    key_id, secret = issued.token.split("_", 2)[1:]
    wrong = f"cl_{key_id}_{'A' * len(secret)}"
    assert keys.authenticate(wrong) is None
    assert keys.authenticate(f"cl_{'0' * 16}_{secret}") is None
    assert keys.authenticate("Bearer nonsense") is None
    assert keys.authenticate("") is None


def test_a_revoked_key_no_longer_authenticates_and_its_principal_may_get_a_new_one(keys: KeyStore) -> None:
    issued = keys.create("auditor", Role.auditor)
    with pytest.raises(InvalidInput) as active:
        keys.create("auditor", Role.auditor)
    assert active.value.rule == "principal_has_active_key"
    revoked = keys.revoke("auditor")
    assert revoked.revoked_at is not None
    assert keys.authenticate(issued.token) is None
    assert keys.revoke(issued.key.key_id).revoked_at == revoked.revoked_at, "revoking twice is harmless"
    renewed = keys.create("auditor", Role.auditor)
    assert keys.authenticate(renewed.token) is not None
    with pytest.raises(NotFound):
        keys.revoke("nobody")


@pytest.mark.parametrize(
    ("principal", "role", "system", "types", "rule"),
    [
        ("x", "superuser", None, [], "role_invalid"),
        ("has space", "reader", None, [], "principal_invalid"),
        ("r", "reader", "hr", [], "grant_only_for_posters"),
        ("p", "poster", None, ["merit.awarded"], "system_required"),
        ("p", "poster", "hr", [], "event_types_required"),
        ("p", "poster", "hr", ["policy.published"], "event_type_not_postable"),
        ("p", "poster", "ledger.accrue", ["tenure.accrued"], "system_reserved"),
    ],
)
def test_a_key_that_grants_too_much_or_too_little_is_refused(
    keys: KeyStore, principal: str, role: str, system: str | None, types: list[str], rule: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        keys.create(principal, role, system=system, event_types=types)
    assert refused.value.rule == rule


def test_roles_include_the_ones_before_them_except_poster() -> None:
    assert role_allows(Role.admin, Role.reader) and role_allows(Role.admin, Role.auditor)
    assert role_allows(Role.auditor, Role.reader) and not role_allows(Role.auditor, Role.admin)
    assert not role_allows(Role.reader, Role.auditor)
    assert role_allows(Role.poster, Role.poster)
    assert not any(role_allows(Role.poster, required) for required in (Role.reader, Role.auditor, Role.admin))
    assert not any(role_allows(held, Role.poster) for held in (Role.reader, Role.auditor, Role.admin))


def test_demo_keys_are_reissued_one_per_role_and_the_old_ones_revoked(keys: KeyStore) -> None:
    first = keys.issue_demo_keys()
    assert sorted(key.key.role.value for key in first) == ["admin", "auditor", "poster", "reader"]
    assert all(key.key.demo and key.key.principal.startswith("demo-") for key in first)
    second = keys.issue_demo_keys()
    assert all(keys.authenticate(key.token) is None for key in first)
    assert all(keys.authenticate(key.token) is not None for key in second)
    assert len(keys.keys(include_revoked=False)) == 4


# The shell.


def test_keys_create_list_and_revoke_from_the_shell(sqlite_url: str) -> None:
    app = _standalone()
    created = runner.invoke(
        app,
        [
            "keys",
            "create",
            "hr-sync",
            "--role",
            "poster",
            "--system",
            "hr",
            "--types",
            "merit.awarded,cadre.registered",
            "-d",
            sqlite_url,
            "--format",
            "json",
        ],
    )
    assert created.exit_code == 0, created.output
    issued = json.loads(created.stdout)
    token = issued["token"]
    assert issued["key"]["event_types"] == ["cadre.registered", "merit.awarded"]
    listed = runner.invoke(app, ["keys", "list", "-d", sqlite_url, "--format", "json"])
    assert listed.exit_code == 0
    assert token.split("_", 2)[2] not in listed.stdout
    assert [key["principal"] for key in json.loads(listed.stdout)] == ["hr-sync"]
    revoked = runner.invoke(app, ["keys", "revoke", "hr-sync", "-d", sqlite_url])
    assert revoked.exit_code == 0, revoked.output
    with KeyStore.open(sqlite_url) as store:
        assert store.authenticate(token) is None


def test_keys_create_refuses_a_bad_grant_with_exit_code_2(sqlite_url: str) -> None:
    result = runner.invoke(_standalone(), ["keys", "create", "p", "--role", "poster", "-d", sqlite_url])
    assert result.exit_code == 2
    assert "system_required" in result.output


def test_keys_demo_prints_demo_keys_and_three_curl_lines(sqlite_url: str) -> None:
    from ledger import Ledger
    from tests.conftest import registration

    with Ledger.open(sqlite_url) as ledger:
        ledger.post([registration("C9", unit_id="U7")])
    result = runner.invoke(_standalone(), ["keys", "demo", "-d", sqlite_url])
    assert result.exit_code == 0, result.output
    assert "DEMO" in result.stdout
    curls = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("curl ")]
    assert len(curls) == 3
    assert "/v1/events" in curls[0] and '"cadre_id":"C9"' in curls[0]
    assert "/v1/cadres/C9/history" in curls[1]
    assert "scope=unit:U7&period=" in curls[2]
