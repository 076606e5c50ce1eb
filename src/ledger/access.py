"""API keys: who may call the audit API, in which role, and — for posters — as which system, with which types.

A key is `cl_<key_id>_<secret>`: `key_id` is 16 hex digits that find the row, `secret` 43 URL-safe
characters (256 random bits). Only SHA-256 of the secret is kept; the secret is shown once, when the key
is created. Authentication hashes the presented secret and compares digests with `hmac.compare_digest`,
so the comparison takes the same time wherever the digests differ.

The record of a key is the chained log: creating a key appends `key.created` (its id, principal, role,
system, event types and the secret's SHA-256), revoking it `key.revoked`, in the stream `$keys` under the
system `ledger.keys`. The table `ledger_keys` is a projection of those events, written after them. Every
authentication checks the key's row against a per-process fold of `$keys` (refreshed when the stream
grew: one indexed query a request); a row that disagrees with the log, that the log never created, or
that is missing, refuses the key — the same 401 as an unknown key — and logs which key and field.
`check_against_log` lists every disagreement; `rebuild` rewrites the table from the log.

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
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.domain.cadre import KEYS_STREAM
from ledger.domain.errors import Conflict, InvalidInput, NotFound
from ledger.domain.events import (
    POSTABLE_EVENT_TYPES,
    PRINCIPAL_PATTERN,
    SYSTEM_PATTERN,
    EventBase,
    KeyCreated,
    KeyRevoked,
    Source,
)
from ledger.ledger import BATCH_SIZE_MAX, Ledger
from ledger.results import TableFinding
from ledger.store.application import DEFAULT_DATABASE_URL
from ledger.store.mapper import decode_event, encode_event
from ledger.store.sql import engine_for, schema_of

__all__ = [
    "KEYS_SYSTEM",
    "KEY_PREFIX",
    "PRINCIPAL_PATTERN",
    "ApiKey",
    "IssuedKey",
    "KeyStore",
    "LoggedKey",
    "Role",
    "role_allows",
]

KEY_PREFIX: Final = "cl"
KEY_ID_BYTES: Final = 8
SECRET_BYTES: Final = 32
# The ledger posts under systems of its own (accruals, policies, keys); no key may post as them.
RESERVED_SYSTEM_PREFIX: Final = "ledger."
KEYS_SYSTEM: Final = "ledger.keys"
DEMO_PREFIX: Final = "demo-"
DEMO_SYSTEM: Final = "demo"
# `posted_by` of key events recorded through the library when no operator is named.
DEFAULT_OPERATOR: Final = "library"
# `posted_by` of the events that adopt keys created before keys were recorded in the log.
ADOPTER: Final = "ledger"
ADOPTED_FLAG: Final = "keys_adopted"
TABLE: Final = "ledger_keys"

_TOKEN = re.compile(rf"\A{KEY_PREFIX}_([0-9a-f]{{{2 * KEY_ID_BYTES}}})_([A-Za-z0-9_-]{{43}})\Z")
_PRINCIPAL = re.compile(PRINCIPAL_PATTERN)
_SYSTEM = re.compile(SYSTEM_PATTERN)
# Compared against when a key id is unknown, so that an unknown id costs the same as a wrong secret.
_DUMMY_DIGEST: Final = hashlib.sha256(b"no such key").hexdigest()

logger = logging.getLogger("ledger.access")


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
    TABLE,
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
# What the key store remembers beside the table: that legacy rows were adopted into the log (once).
keys_meta_table = sa.Table(
    "ledger_keys_meta",
    _metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
# The columns a row must hold as the log says, in the order findings name them.
ROW_COLUMNS: Final = (
    "secret_sha256",
    "principal",
    "role",
    "system",
    "event_types",
    "created_at",
    "revoked_at",
    "demo",
)
# Rows as stored, `demo` as an integer: a value other than 0 or 1 written by hand is a disagreement too.
_ROW_QUERY: Final = sa.select(
    keys_table.c.key_id, *(keys_table.c[c] for c in ROW_COLUMNS[:-1]), sa.cast(keys_table.c.demo, sa.Integer)
)


def _now() -> datetime:
    return datetime.now(UTC)


def _format_instant(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class LoggedKey(msgspec.Struct, frozen=True):
    """A key as the log records it: the row `ledger_keys` must hold, and where the log created it."""

    key_id: str
    secret_sha256: str
    principal: str
    role: str
    system: str | None
    event_types: str
    created_at: str
    revoked_at: str | None
    demo: int
    position: int
    adopted: bool

    def row(self) -> dict[str, Any]:
        """The row of this key, column by column (as `_ROW_QUERY` reads it back)."""
        return {"key_id": self.key_id, **{column: getattr(self, column) for column in ROW_COLUMNS}}

    def api_key(self) -> ApiKey:
        created_at = _parse_instant(self.created_at)
        assert created_at is not None
        return ApiKey(
            key_id=self.key_id,
            principal=self.principal,
            role=Role(self.role),
            system=self.system,
            event_types=tuple(self.event_types.split()),
            created_at=created_at,
            revoked_at=_parse_instant(self.revoked_at),
            demo=bool(self.demo),
        )


def fold_keys(records: Iterable[tuple[int, str, EventBase]]) -> dict[str, LoggedKey]:
    """The keys the `$keys` stream records, by id, from its `(position, recorded_at, event)` in order.

    The key store records a key once and revokes it at most once; anything else (a second creation of an
    id, a revocation of an unknown key) was not written by it and is logged and ignored.
    """
    keys: dict[str, LoggedKey] = {}
    for position, _recorded_at, event in records:
        if isinstance(event, KeyCreated):
            if event.key_id in keys:
                logger.warning("the log creates key %s again at position %d; ignored", event.key_id, position)
                continue
            keys[event.key_id] = LoggedKey(
                key_id=event.key_id,
                secret_sha256=event.secret_sha256,
                principal=event.principal,
                role=event.role,
                system=event.system,
                event_types=" ".join(event.event_types),
                created_at=_format_instant(event.created_at),
                revoked_at=None,
                demo=int(event.demo),
                position=position,
                adopted=event.adopted,
            )
        elif isinstance(event, KeyRevoked):
            key = keys.get(event.key_id)
            if key is None:
                logger.warning(
                    "the log revokes unknown key %s at position %d; ignored", event.key_id, position
                )
            elif key.revoked_at is None:
                keys[event.key_id] = msgspec.structs.replace(
                    key, revoked_at=_format_instant(event.revoked_at)
                )
    return keys


def differences(row: Any, key: LoggedKey) -> list[tuple[str, Any, Any]]:
    """`(column, table's value, log's value)` of each column where a row (read by `_ROW_QUERY`) differs."""
    return [
        (column, getattr(row, column), getattr(key, column))
        for column in ROW_COLUMNS
        if getattr(row, column) != getattr(key, column)
    ]


def _shown(column: str, value: Any) -> str:
    if value is None:
        return "none"
    if column == "secret_sha256" and isinstance(value, str) and len(value) > 12:
        return value[:12] + "…"
    return repr(value) if isinstance(value, str) and (not value or value != value.strip()) else str(value)


def _check_name(name: str, field: str) -> str:
    if not _PRINCIPAL.fullmatch(name):
        raise InvalidInput(
            f"{name!r} is not a principal name (1–64 of A–Z a–z 0–9 . _ : @ -)",
            field=field,
            rule="principal_invalid",
        )
    return name


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
    if not _SYSTEM.fullmatch(system):
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
    unknown = sorted(set(event_types) - POSTABLE_EVENT_TYPES)
    if unknown:
        raise InvalidInput(
            f"not event types a poster may post: {', '.join(unknown)} "
            "(policies are published by admins through POST /v1/policies)",
            field="event_types",
            rule="event_type_not_postable",
        )
    return system, tuple(sorted(set(event_types)))


def _recordable(event: EventBase) -> EventBase:
    """`event`, checked by the log's own strict decoder: what is appended must always decode again."""
    decode_event(encode_event(event))
    return event


class KeyStore:
    """The API keys of one ledger: events in its log, and their projection, the table `ledger_keys`."""

    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        *,
        clock: Callable[[], datetime] = _now,
        operator: str = DEFAULT_OPERATOR,
        owns_ledger: bool = False,
    ) -> None:
        self._engine = engine
        self._ledger = ledger
        self._clock = clock
        self._operator = _check_name(operator, "by")
        self._owns_ledger = owns_ledger
        # The fold of `$keys` and the stream version it was read at; replaced whole, read without the lock.
        # The `$keys` head the fold was read at (a fresh object: not read yet), and the fold.
        self._fold: tuple[object, dict[str, LoggedKey]] = (object(), {})
        self._fold_lock = threading.Lock()
        self._write_lock = threading.RLock()

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        ledger: Ledger | None = None,
        operator: str = DEFAULT_OPERATOR,
        adopt: bool = True,
        clock: Callable[[], datetime] = _now,
    ) -> KeyStore:
        """Open (creating the tables if needed) the key store of the ledger at `url`.

        It records through `ledger` when given (one writer per process), else through a Ledger of its own
        on the same URL, closed with it. On the first open after keys were moved into the log, rows that
        have no events are adopted, once (`adopt=False` skips that, for a read-only look).
        """
        url = url or (ledger.url if ledger is not None else None)
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
        owns = ledger is None
        try:
            ledger = ledger or Ledger.open(url)
        except BaseException:
            engine.dispose()
            raise
        store = cls(engine, ledger, clock=clock, operator=operator, owns_ledger=owns)
        if adopt:
            try:
                store._adopt_legacy_rows()
            except BaseException:
                store.close()
                raise
        return store

    def close(self) -> None:
        self._engine.dispose()
        if self._owns_ledger:
            self._ledger.close()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # The log's view.

    def logged(self) -> dict[str, LoggedKey]:
        """The keys as the log records them, by id: the fold of `$keys`, read again only if its newest
        event changed (its version, position or hash: after a failover that lost a key event and a new
        key since, the stream has its old length but not its old head)."""
        head = self._ledger.stream_head(KEYS_STREAM)
        folded, keys = self._fold
        if head == folded:
            return keys
        with self._fold_lock:
            if self._fold[0] != head:
                # The head read before the records: a key recorded in between makes the next call fold
                # again, never the reverse.
                self._fold = (head, fold_keys(self._ledger.stream_records(KEYS_STREAM)))
            return self._fold[1]

    def _record(self, events: Sequence[EventBase], by: str | None) -> None:
        posted_by = self._operator if by is None else _check_name(by, "by")
        for start in range(0, len(events), BATCH_SIZE_MAX):
            chunk = [_recordable(event) for event in events[start : start + BATCH_SIZE_MAX]]
            self._ledger.record_own(chunk, posted_by=posted_by)

    def _project(self, key_ids: Iterable[str]) -> None:
        """Write the rows of `key_ids` as the log has them (the projection's only writer)."""
        logged = self.logged()
        rows = [logged[key_id].row() for key_id in key_ids]
        if not rows:
            return
        with self._engine.begin() as connection:
            connection.execute(
                keys_table.delete().where(keys_table.c.key_id.in_([r["key_id"] for r in rows]))
            )
            connection.execute(keys_table.insert(), [row | {"demo": bool(row["demo"])} for row in rows])

    def _source(self, what: str) -> Source:
        return Source(system=KEYS_SYSTEM, key=what)

    # Creating, listing, revoking.

    def create(
        self,
        principal: str,
        role: Role | str,
        *,
        system: str | None = None,
        event_types: Iterable[str] = (),
        demo: bool = False,
        by: str | None = None,
    ) -> IssuedKey:
        """Create a key; the returned token is the only copy of its secret. `by` is recorded as the
        event's `posted_by` (the store's operator if not given)."""
        try:
            role = Role(role)
        except ValueError:
            raise InvalidInput(
                f"{role!r} is not a role: poster, reader, auditor or admin", field="role", rule="role_invalid"
            ) from None
        _check_name(principal, "principal")
        bound_system, types = _check_grant(role, system, list(event_types))
        key_id = secrets.token_hex(KEY_ID_BYTES)
        secret = secrets.token_urlsafe(SECRET_BYTES)
        with self._write_lock:
            logged = self.logged().values()
            active = next((k for k in logged if k.principal == principal and k.revoked_at is None), None)
            if active is not None:
                raise _has_active_key(principal, active.key_id)
            # The n-th key of a principal has the source `created:<principal>:<n>`: two processes creating a
            # key for one principal at once share the source, and the log's unique source index keeps one.
            generation = 1 + sum(1 for k in logged if k.principal == principal and not k.adopted)
            event = KeyCreated(
                effective_on=self._ledger.today(),
                source=self._source(f"created:{principal}:{generation}"),
                key_id=key_id,
                principal=principal,
                role=role.value,
                system=bound_system,
                event_types=types,
                secret_sha256=_digest(secret),
                created_at=self._clock(),
                demo=demo,
            )
            try:
                self._record([event], by)
            except Conflict:
                raise _has_active_key(principal, "created a moment ago by another process") from None
            self._project([key_id])
        return IssuedKey(self.logged()[key_id].api_key(), f"{KEY_PREFIX}_{key_id}_{secret}")

    def keys(self, *, include_revoked: bool = True) -> list[ApiKey]:
        """Every key the log records, oldest first."""
        logged = sorted(self.logged().values(), key=lambda key: (key.created_at, key.key_id))
        return [key.api_key() for key in logged if include_revoked or key.revoked_at is None]

    def revoke(self, key_id_or_principal: str, *, by: str | None = None) -> ApiKey:
        """Revoke a key, named by its id or by its principal's active key; revoking twice is harmless."""
        with self._write_lock:
            logged = self.logged()
            key = logged.get(key_id_or_principal) or next(
                (k for k in logged.values() if k.principal == key_id_or_principal and k.revoked_at is None),
                None,
            )
            if key is None:
                raise NotFound(
                    f"no key {key_id_or_principal} (give a key id or a principal with an active key)"
                )
            self._revoke([key], by)
            return self.logged()[key.key_id].api_key()

    def _revoke(self, keys: Sequence[LoggedKey], by: str | None) -> None:
        events = [
            KeyRevoked(
                effective_on=self._ledger.today(),
                source=self._source(f"revoked:{key.key_id}"),
                key_id=key.key_id,
                revoked_at=self._clock(),
            )
            for key in keys
            if key.revoked_at is None
        ]
        if events:
            # A Conflict: revoked at the same moment by another process, so revoked either way.
            with contextlib.suppress(Conflict):
                self._record(events, by)
        self._project(key.key_id for key in keys)

    def issue_demo_keys(self, *, by: str | None = None) -> list[IssuedKey]:
        """One fresh demo key per role, the previous demo keys revoked.

        Secrets are stored only as hashes, so demo keys cannot be shown again: each call re-issues them.
        """
        with self._write_lock:
            self._revoke([k for k in self.logged().values() if k.demo and k.revoked_at is None], by)
            issued = [
                self.create(
                    f"{DEMO_PREFIX}poster",
                    Role.poster,
                    system=DEMO_SYSTEM,
                    event_types=sorted(POSTABLE_EVENT_TYPES),
                    demo=True,
                    by=by,
                )
            ]
            issued += [
                self.create(f"{DEMO_PREFIX}{role.value}", role, demo=True, by=by)
                for role in (Role.reader, Role.auditor, Role.admin)
            ]
        return issued

    # Authenticating.

    def authenticate(self, token: str) -> ApiKey | None:
        """The active key `token` belongs to, or None: malformed, unknown, wrong secret, revoked — or a row
        that disagrees with the log, has no event in it, or is missing (logged, naming key and field)."""
        match = _TOKEN.match(token)
        if match is None:
            return None
        key_id, secret = match.groups()
        with self._engine.connect() as connection:
            row = connection.execute(_ROW_QUERY.where(keys_table.c.key_id == key_id)).first()
        key = self.logged().get(key_id)
        expected = key.secret_sha256 if key is not None else _DUMMY_DIGEST
        matches = hmac.compare_digest(expected.encode(), _digest(secret).encode())
        if key is None:
            if row is not None:
                logger.critical(
                    "API key %s refused: its row in %s has no key.created event in the log "
                    "(written behind the ledger's back)",
                    key_id,
                    TABLE,
                )
            return None
        if row is None:
            logger.warning(
                "API key %s refused: the log created it (position %d) but %s has no row for it; "
                "`ledger keys rebuild` restores the table from the log",
                key_id,
                key.position,
                TABLE,
            )
            return None
        disagreeing = differences(row, key)
        if disagreeing:
            logger.critical(
                "API key %s refused: its row in %s disagrees with the log: %s",
                key_id,
                TABLE,
                "; ".join(_detail(column, ours, theirs) for column, ours, theirs in disagreeing),
            )
            return None
        if not matches or key.revoked_at is not None:
            return None
        return key.api_key()

    # Checking and rebuilding the projection.

    def check_against_log(self) -> list[TableFinding]:
        """Every disagreement between `ledger_keys` and the log: a column that differs (`index_mismatch`),
        a row without a `key.created` event (`inserted`), a logged key without a row (`missing`)."""
        logged = self.logged()
        with self._engine.connect() as connection:
            rows = connection.execute(_ROW_QUERY.order_by(keys_table.c.key_id)).all()
        findings: list[TableFinding] = []
        for row in rows:
            key = logged.get(row.key_id)
            if key is None:
                findings.append(
                    _finding(row.key_id, "inserted", "the row has no key.created event in the log")
                )
                continue
            findings += [
                _finding(row.key_id, "index_mismatch", _detail(column, ours, theirs))
                for column, ours, theirs in differences(row, key)
            ]
        present = {row.key_id for row in rows}
        findings += [
            _finding(
                key_id,
                "missing",
                f"the log created the key at position {logged[key_id].position}; the table has no row",
            )
            for key_id in sorted(set(logged) - present)
        ]
        return findings

    def rebuild(self) -> list[TableFinding]:
        """Rewrite `ledger_keys` from the log; the disagreements it repaired."""
        with self._write_lock:
            findings = self.check_against_log()
            rows = [key.row() for key in self.logged().values()]
            with self._engine.begin() as connection:
                connection.execute(keys_table.delete())
                if rows:
                    connection.execute(
                        keys_table.insert(), [row | {"demo": bool(row["demo"])} for row in rows]
                    )
        for finding in findings:
            logger.warning(
                "%s %s rebuilt from the log (%s: %s)", TABLE, finding.row, finding.reason, finding.detail
            )
        return findings

    def _adopt_legacy_rows(self) -> None:
        """Record `key.created` (and `key.revoked`) for the rows of a ledger whose keys predate the log's
        record of them: once — only while `$keys` is empty and the store has not marked adoption done.
        docs/decisions.md says what this trusts."""
        with self._engine.connect() as connection:
            done = connection.execute(
                sa.select(keys_meta_table.c.value).where(keys_meta_table.c.name == ADOPTED_FLAG)
            ).first()
            rows = [] if done is not None else connection.execute(sa.select(keys_table)).all()
        if done is not None:
            return
        with self._write_lock:
            if rows and self._ledger.stream_version(KEYS_STREAM) == 0:
                self._adopt(sorted(rows, key=lambda row: (row.created_at, row.key_id)))
            adopted_at = _format_instant(self._clock())
            with contextlib.suppress(sa.exc.IntegrityError), self._engine.begin() as connection:
                connection.execute(keys_meta_table.insert().values(name=ADOPTED_FLAG, value=adopted_at))

    def _adopt(self, rows: Sequence[Any]) -> None:
        today = self._ledger.today()
        events: list[EventBase] = []
        adopted: list[str] = []
        for row in rows:
            try:
                created_at = _parse_instant(row.created_at)
                assert created_at is not None
                pair: list[EventBase] = [
                    KeyCreated(
                        effective_on=today,
                        source=self._source(f"adopted:{row.key_id}"),
                        key_id=row.key_id,
                        principal=row.principal,
                        role=Role(row.role).value,
                        system=row.system,
                        event_types=tuple(row.event_types.split()),
                        secret_sha256=row.secret_sha256,
                        created_at=created_at,
                        demo=bool(row.demo),
                        adopted=True,
                    )
                ]
                revoked_at = _parse_instant(row.revoked_at)
                if revoked_at is not None:
                    pair.append(
                        KeyRevoked(
                            effective_on=today,
                            source=self._source(f"revoked:{row.key_id}"),
                            key_id=row.key_id,
                            revoked_at=revoked_at,
                        )
                    )
                events += [_recordable(event) for event in pair]
                adopted.append(row.key_id)
            except (ValueError, TypeError, AssertionError, msgspec.MsgspecError) as error:
                logger.error(
                    "the row of key %s cannot be adopted into the log (%s); it is refused", row.key_id, error
                )
        if events:
            # A Conflict: another process adopted the same rows at the same moment (dated another day).
            with contextlib.suppress(Conflict):
                self._record(events, ADOPTER)
            self._project(key_id for key_id in adopted if key_id in self.logged())
            logger.warning("adopted %d API keys of %s into the log", len(adopted), TABLE)


def key_findings(ledger: Ledger) -> list[TableFinding]:
    """`check_against_log` for `ledger verify`: writes nothing (no adoption, no table created) and finds
    nothing where keys were never kept."""
    engine = engine_for(ledger.url)
    try:
        if not sa.inspect(engine).has_table(keys_table.name, schema=schema_of(ledger.url)):
            return []
    finally:
        engine.dispose()
    with KeyStore.open(ledger.url, ledger=ledger, adopt=False) as keys:
        return keys.check_against_log()


def _has_active_key(principal: str, active: str) -> InvalidInput:
    return InvalidInput(
        f"{principal} already has an active key ({active}); revoke it first",
        field="principal",
        rule="principal_has_active_key",
    )


def _detail(column: str, ours: Any, theirs: Any) -> str:
    return f"{column}: table says {_shown(column, ours)}, log says {_shown(column, theirs)}"


def _finding(key_id: str, reason: str, detail: str) -> TableFinding:
    return TableFinding(table=TABLE, row=f"key {key_id}", reason=reason, detail=detail)


def _create_schema(engine: Engine, schema: str) -> None:
    """Create the PostgreSQL schema the keys live in, as `Ledger.open` does for the log."""
    # Another process may create it at the same moment.
    with contextlib.suppress(sa.exc.IntegrityError, sa.exc.ProgrammingError), engine.begin() as connection:
        connection.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
