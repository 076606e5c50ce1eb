"""API keys: who may call the audit API, in which role, and — for posters — as which system, with which types.

A key is `cl_<key_id>_<secret>`: `key_id` is 16 hex digits that find the row, `secret` 43 URL-safe
characters (256 random bits). Only SHA-256 of the secret is stored, in the table `ledger_keys` of the
ledger's own database; the secret is shown once, when the key is created. Authentication hashes the
presented secret and compares digests with `hmac.compare_digest`, so the comparison takes the same time
wherever the digests differ.

Roles (SPEC §9): `reader` reads, `auditor` also reads the log and verifies it, `admin` also publishes
policies — each includes the ones before it. `poster` stands apart: it only posts events, only as the one
`source.system` its key is bound to, and only the event types listed on the key. Nobody else posts events.

A key belongs to a principal, the name recorded as `posted_by` in every event posted with it. A principal
names a party (a system or a person), not a key: its key can be revoked and a new one created under the
same name, so history keeps one name per party. Only one active key per principal is allowed at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.domain.errors import InvalidInput, NotFound
from ledger.domain.events import CADRE_EVENT_TYPES, SYSTEM_PATTERN
from ledger.store.application import DEFAULT_DATABASE_URL
from ledger.store.sql import engine_for, schema_of

__all__ = [
    "KEY_PREFIX",
    "ApiKey",
    "IssuedKey",
    "KeyStore",
    "Role",
    "role_allows",
]

KEY_PREFIX: Final = "cl"
KEY_ID_BYTES: Final = 8
SECRET_BYTES: Final = 32
PRINCIPAL_PATTERN: Final = r"^[A-Za-z0-9._:@-]{1,64}$"
# The ledger posts under systems of its own (accruals, policies); no key may post as them.
RESERVED_SYSTEM_PREFIX: Final = "ledger."
DEMO_PREFIX: Final = "demo-"
DEMO_SYSTEM: Final = "demo"

_TOKEN = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{{2 * KEY_ID_BYTES}}})_([A-Za-z0-9_-]{{43}})$")
_PRINCIPAL = re.compile(PRINCIPAL_PATTERN)
_SYSTEM = re.compile(SYSTEM_PATTERN)
# Compared against when a key id is unknown, so that an unknown id costs the same as a wrong secret.
_DUMMY_DIGEST: Final = hashlib.sha256(b"no such key").hexdigest()


class Role(StrEnum):
    """What a key may do (SPEC §9)."""

    poster = "poster"
    reader = "reader"
    auditor = "auditor"
    admin = "admin"


# Each reading role includes the ones before it; `poster` is outside the order.
_READING_RANK: Final = {Role.reader: 1, Role.auditor: 2, Role.admin: 3}


def role_allows(held: Role, required: Role) -> bool:
    """Whether a key of role `held` may call a route that requires `required`."""
    if required is Role.poster or held is Role.poster:
        return held is required
    return _READING_RANK[held] >= _READING_RANK[required]


class ApiKey(msgspec.Struct, frozen=True):
    """A stored key without its secret."""

    key_id: str
    principal: str
    role: Role
    system: str | None
    event_types: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    demo: bool

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def may_post(self, system: str, event_type: str) -> bool:
        """Whether this key may post an event of `event_type` as `system`."""
        return self.role is Role.poster and system == self.system and event_type in self.event_types


class IssuedKey(msgspec.Struct, frozen=True):
    """A newly created key and its token: the only moment the secret exists outside the caller."""

    key: ApiKey
    token: str


_metadata = sa.MetaData()
keys_table = sa.Table(
    "ledger_keys",
    _metadata,
    sa.Column("key_id", sa.String(2 * KEY_ID_BYTES), primary_key=True),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("principal", sa.String(64), nullable=False, index=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("system", sa.String(64), nullable=True),
    # Event types as a space-separated list: a handful of short names, read whole.
    sa.Column("event_types", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("revoked_at", sa.String(32), nullable=True),
    sa.Column("demo", sa.Boolean, nullable=False, default=False),
)


def _now() -> datetime:
    return datetime.now(UTC)


def _format_instant(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _row_to_key(row: Any) -> ApiKey:
    created_at = _parse_instant(row.created_at)
    assert created_at is not None
    return ApiKey(
        key_id=row.key_id,
        principal=row.principal,
        role=Role(row.role),
        system=row.system,
        event_types=tuple(row.event_types.split()),
        created_at=created_at,
        revoked_at=_parse_instant(row.revoked_at),
        demo=bool(row.demo),
    )


def _check_grant(
    role: Role, system: str | None, event_types: Sequence[str]
) -> tuple[str | None, tuple[str, ...]]:
    """The system and types a key of `role` is bound to, validated."""
    if role is not Role.poster:
        if system is not None or event_types:
            raise InvalidInput(
                "only a poster key is bound to a system and event types",
                field="system" if system is not None else "event_types",
                rule="grant_only_for_posters",
            )
        return None, ()
    if system is None:
        raise InvalidInput(
            "a poster key needs the system it posts as", field="system", rule="system_required"
        )
    if not _SYSTEM.match(system):
        raise InvalidInput(
            f"{system!r} is not a system name (1–64 of A–Z a–z 0–9 . _ : -)",
            field="system",
            rule="system_invalid",
        )
    if system.startswith(RESERVED_SYSTEM_PREFIX):
        raise InvalidInput(
            f"systems starting with {RESERVED_SYSTEM_PREFIX!r} are the ledger's own",
            field="system",
            rule="system_reserved",
        )
    if not event_types:
        raise InvalidInput(
            "a poster key needs the event types it may post", field="event_types", rule="event_types_required"
        )
    unknown = sorted(set(event_types) - CADRE_EVENT_TYPES)
    if unknown:
        raise InvalidInput(
            f"not event types a poster may post: {', '.join(unknown)} "
            "(policies are published by admins through POST /v1/policies)",
            field="event_types",
            rule="event_type_not_postable",
        )
    return system, tuple(sorted(set(event_types)))


class KeyStore:
    """The API keys of one ledger, in the table `ledger_keys` of its database."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _now) -> None:
        self._engine = engine
        self._clock = clock

    @classmethod
    def open(cls, url: str | None = None) -> KeyStore:
        """Open (creating the table if needed) the key store of the ledger at `url`."""
        url = url or os.environ.get("LEDGER_DATABASE_URL") or DEFAULT_DATABASE_URL
        engine = engine_for(url)
        schema = schema_of(url)
        if schema:
            _create_schema(engine, schema)
        # Several processes may open a fresh database at once and both find the table missing: the loser's
        # CREATE fails, and a second look finds the winner's table.
        try:
            _metadata.create_all(engine)
        except (sa.exc.OperationalError, sa.exc.IntegrityError, sa.exc.ProgrammingError):
            _metadata.create_all(engine)
        return cls(engine)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # Creating, listing, revoking.

    def create(
        self,
        principal: str,
        role: Role | str,
        *,
        system: str | None = None,
        event_types: Iterable[str] = (),
        demo: bool = False,
    ) -> IssuedKey:
        """Create a key; the returned token is the only copy of its secret."""
        try:
            role = Role(role)
        except ValueError:
            raise InvalidInput(
                f"{role!r} is not a role: poster, reader, auditor or admin", field="role", rule="role_invalid"
            ) from None
        if not _PRINCIPAL.match(principal):
            raise InvalidInput(
                f"{principal!r} is not a principal name (1–64 of A–Z a–z 0–9 . _ : @ -)",
                field="principal",
                rule="principal_invalid",
            )
        bound_system, types = _check_grant(role, system, list(event_types))
        key_id = secrets.token_hex(KEY_ID_BYTES)
        secret = secrets.token_urlsafe(SECRET_BYTES)
        created_at = self._clock()
        with self._engine.begin() as connection:
            active = connection.execute(
                sa.select(keys_table.c.key_id).where(
                    keys_table.c.principal == principal, keys_table.c.revoked_at.is_(None)
                )
            ).first()
            if active is not None:
                raise InvalidInput(
                    f"{principal} already has an active key ({active.key_id}); revoke it first",
                    field="principal",
                    rule="principal_has_active_key",
                )
            connection.execute(
                keys_table.insert().values(
                    key_id=key_id,
                    secret_sha256=_digest(secret),
                    principal=principal,
                    role=role.value,
                    system=bound_system,
                    event_types=" ".join(types),
                    created_at=_format_instant(created_at),
                    revoked_at=None,
                    demo=demo,
                )
            )
        key = ApiKey(key_id, principal, role, bound_system, types, created_at, None, demo)
        return IssuedKey(key, f"{KEY_PREFIX}_{key_id}_{secret}")

    def keys(self, *, include_revoked: bool = True) -> list[ApiKey]:
        """Every key, oldest first."""
        query = sa.select(keys_table).order_by(keys_table.c.created_at, keys_table.c.key_id)
        if not include_revoked:
            query = query.where(keys_table.c.revoked_at.is_(None))
        with self._engine.connect() as connection:
            return [_row_to_key(row) for row in connection.execute(query)]

    def revoke(self, key_id_or_principal: str) -> ApiKey:
        """Revoke a key, named by its id or by its principal's active key; revoking twice is harmless."""
        with self._engine.begin() as connection:
            row = (
                connection.execute(
                    sa.select(keys_table).where(keys_table.c.key_id == key_id_or_principal)
                ).first()
                or connection.execute(
                    sa.select(keys_table).where(
                        keys_table.c.principal == key_id_or_principal, keys_table.c.revoked_at.is_(None)
                    )
                ).first()
            )
            if row is None:
                raise NotFound(
                    f"no key {key_id_or_principal} (give a key id or a principal with an active key)"
                )
            if row.revoked_at is None:
                connection.execute(
                    keys_table.update()
                    .where(keys_table.c.key_id == row.key_id)
                    .values(revoked_at=_format_instant(self._clock()))
                )
            key_id = row.key_id
        with self._engine.connect() as connection:
            return _row_to_key(
                connection.execute(sa.select(keys_table).where(keys_table.c.key_id == key_id)).one()
            )

    def issue_demo_keys(self) -> list[IssuedKey]:
        """One fresh demo key per role, the previous demo keys revoked.

        Secrets are stored only as hashes, so demo keys cannot be shown again: each call re-issues them.
        """
        now = _format_instant(self._clock())
        with self._engine.begin() as connection:
            connection.execute(
                keys_table.update()
                .where(keys_table.c.demo.is_(True), keys_table.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        issued = [
            self.create(
                f"{DEMO_PREFIX}poster",
                Role.poster,
                system=DEMO_SYSTEM,
                event_types=sorted(CADRE_EVENT_TYPES),
                demo=True,
            )
        ]
        issued += [
            self.create(f"{DEMO_PREFIX}{role.value}", role, demo=True)
            for role in (Role.reader, Role.auditor, Role.admin)
        ]
        return issued

    # Authenticating.

    def authenticate(self, token: str) -> ApiKey | None:
        """The active key `token` belongs to, or None (malformed, unknown, wrong secret or revoked)."""
        match = _TOKEN.match(token)
        if match is None:
            return None
        key_id, secret = match.groups()
        with self._engine.connect() as connection:
            row = connection.execute(sa.select(keys_table).where(keys_table.c.key_id == key_id)).first()
        stored = row.secret_sha256 if row is not None else _DUMMY_DIGEST
        matches = hmac.compare_digest(stored.encode(), _digest(secret).encode())
        if row is None or not matches or row.revoked_at is not None:
            return None
        return _row_to_key(row)


def _create_schema(engine: Engine, schema: str) -> None:
    """Create the PostgreSQL schema the keys live in, as `Ledger.open` does for the log."""
    # Another process may create it at the same moment.
    with contextlib.suppress(sa.exc.IntegrityError, sa.exc.ProgrammingError), engine.begin() as connection:
        connection.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
