"""Authentication and authorization: `Authorization: Bearer <key>`, checked against the key store.

The key store holds each key's row against the log's record of it (`ledger.access`): a row changed, forged
or deleted behind the ledger's back refuses its key with the same 401 as an unknown key.

Each protected handler names the role it requires in its `opt` (`ROLE_OPTION`); one guard, installed on
the whole app, authenticates the key (401 if absent, malformed, unknown, wrong or revoked) and checks the
role (403). Routes without a role — health, the OpenAPI document, and the OPTIONS answers Litestar
generates for CORS and discovery — pass untouched; a `/v1` route without a role is refused, so a
forgotten declaration fails closed. The key lookup runs on a worker thread: on PostgreSQL it is network
I/O.

What a poster may post (its system and event types) depends on the body and is checked by the events
handler with `check_may_post`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from litestar.concurrency import sync_to_thread
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from ledger.access import ApiKey, KeyStore, Role, role_allows
from ledger.api.problems import NotAllowed, NotAuthenticated
from ledger.domain.events import EventBase, type_of

__all__ = ["ROLE_OPTION", "authorize", "check_may_post", "key_of", "requires"]

ROLE_OPTION: Final = "role"
KEY_STORE_STATE: Final = "key_store"
PROTECTED_PREFIX: Final = "/v1/"
SCHEME: Final = "bearer"
# Longer than any key; a longer header is refused before anything else looks at it.
AUTHORIZATION_LENGTH_MAX: Final = 256


def requires(role: Role) -> dict[str, Any]:
    """The handler option that protects a route: `@get(..., opt=requires(Role.reader))`."""
    return {ROLE_OPTION: role}


def _token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization")
    if not header:
        raise NotAuthenticated("send an API key: Authorization: Bearer <key>")
    if len(header) > AUTHORIZATION_LENGTH_MAX:
        raise NotAuthenticated("the Authorization header is not a key this ledger gave out")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != SCHEME or not token.strip():
        raise NotAuthenticated("use the Bearer scheme: Authorization: Bearer <key>")
    return token.strip()


async def authorize(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The app's guard: authenticate the key and check the role the handler requires."""
    required = handler.opt.get(ROLE_OPTION)
    if required is None:
        if (
            connection.scope["path"].startswith(PROTECTED_PREFIX)
            and connection.scope.get("method") != "OPTIONS"
        ):
            raise NotAllowed("this route declares no role; refused", rule="route_without_role")
        return
    keys: KeyStore = connection.app.state[KEY_STORE_STATE]
    key = await sync_to_thread(keys.authenticate, _token(connection))
    if key is None:
        raise NotAuthenticated("the API key is unknown, wrong or revoked")
    if not role_allows(key.role, required):
        raise NotAllowed(
            f"a {key.role.value} key may not call this route (it needs {_needed(required)})",
            rule="role_not_allowed",
        )
    connection.scope["user"] = key


def _needed(required: Role) -> str:
    if required is Role.poster:
        return "a poster key"
    return f"a {required.value} key or above"


def key_of(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiKey:
    """The key the guard authenticated for this request."""
    key = connection.scope.get("user")
    if not isinstance(key, ApiKey):  # the guard did not run: a programming error in the route table
        raise NotAuthenticated("no authenticated key for this request")
    return key


def check_may_post(key: ApiKey, events: Sequence[EventBase]) -> None:
    """Refuse (403, naming the item) any event the poster key may not post."""
    for index, event in enumerate(events):
        event_type = type_of(event)
        if event.source.system != key.system:
            raise NotAllowed(
                f"item {index}: this key posts as system {key.system!r}, not {event.source.system!r}",
                rule="system_not_allowed",
                item=index,
                field="source.system",
            )
        if not key.may_post(event.source.system, event_type):
            raise NotAllowed(
                f"item {index}: this key may not post {event_type} "
                f"(it may post {', '.join(key.event_types)})",
                rule="event_type_not_allowed",
                item=index,
                field="type",
            )
