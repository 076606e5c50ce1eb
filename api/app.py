"""The app factory: `create_app()` builds the Litestar application of SPEC §9.

    uvicorn --factory ledger.api:create_app      # what `ledger serve` runs, configured from the environment

Pass `services` to serve a ledger you opened yourself (tests do, with a fixed clock); otherwise the app
opens `LEDGER_DATABASE_URL` at startup and closes it at shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.plugins import PluginProtocol
from litestar.plugins.core import MsgspecDIPlugin
from litestar.routes import HTTPRoute
from litestar.types import ControllerRouterHandler, Message, Scope

from ledger.api import audit, cadres, console, events, exports, health, policies, units, views
from ledger.api.auth import KEY_STORE_STATE, authorize
from ledger.api.logs import AccessLog
from ledger.api.openapi import DOCUMENT_PATH, StructSchemas, docs_headers, finish, openapi_config
from ledger.api.problems import exception_handlers
from ledger.api.services import Services
from ledger.api.settings import BODY_SIZE_MAX, ApiSettings
from ledger.signing import Signer

__all__ = ["create_app"]

SERVICES_STATE: Final = "services"
CORS_MAX_AGE_SECONDS: Final = 600

ROUTES: Final[list[ControllerRouterHandler]] = [
    events.EventsController,
    cadres.get_cadre,
    cadres.get_history,
    cadres.get_eligibility,
    views.get_rankings,
    views.get_shortlist,
    views.get_recalls,
    views.get_boards,
    views.get_escalations,
    units.get_unit_rankings,
    units.get_unit_escalations,
    units.get_unit,
    exports.download_rankings,
    exports.download_shortlist,
    exports.download_recalls,
    exports.download_boards,
    exports.download_escalations,
    exports.download_history,
    exports.download_eligibility,
    exports.download_unit_rankings,
    exports.download_unit_escalations,
    exports.download_unit,
    audit.verify,
    audit.get_checkpoint,
    audit.inclusion_proof,
    audit.consistency_proof,
    policies.PoliciesController,
    health.live,
    health.ready,
    console.router,
]


def _provide_services(state: State) -> Services:
    services: Services = state[SERVICES_STATE]
    return services


def _allow_every_method(app: Litestar) -> Callable[[Message, Scope], Awaitable[None]]:
    """A `before_send` hook that lists every method of a path in the answer to OPTIONS.

    Litestar's generated OPTIONS handler lists only the methods registered before it was created — the
    first handler's, when a path has several (GET and POST /v1/events).
    """
    methods = {
        route.path: ", ".join(sorted(route.methods)) for route in app.routes if isinstance(route, HTTPRoute)
    }

    async def allow(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
            return
        listed = methods.get(scope.get("path_template", ""))
        if listed is None:
            return
        headers = [(name, value) for name, value in message.get("headers", []) if name.lower() != b"allow"]
        message["headers"] = [*headers, (b"allow", listed.encode())]

    return allow


def _cors(origins: tuple[str, ...]) -> CORSConfig | None:
    if not origins:
        return None
    return CORSConfig(
        allow_origins=list(origins),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        expose_headers=["Retry-After", "WWW-Authenticate", "Content-Disposition"],
        max_age=CORS_MAX_AGE_SECONDS,
    )


class _MsgspecOnly(Litestar):
    """Litestar with only msgspec's plugin by default. Litestar adds pydantic's plugins whenever pydantic
    can be imported (typer brings it), and importing them costs 70–90 ms at every start of a server; the
    API's types are msgspec structs and none is a pydantic model."""

    @staticmethod
    def _get_default_plugins(plugins: list[PluginProtocol]) -> list[PluginProtocol]:
        plugins.append(MsgspecDIPlugin())
        return plugins


def create_app(settings: ApiSettings | None = None, *, services: Services | None = None) -> Litestar:
    """The audit API over the ledger at `settings.database_url` (default: from the environment)."""
    settings = settings or ApiSettings.from_environment()
    owned = services is None
    executor: list[ThreadPoolExecutor] = []

    def startup(app: Litestar) -> None:
        # Blocking work (database reads, posting, verification) runs on the loop's default executor; its
        # default size (cores + 4) is too small when reads wait for `min_position`.
        pool = ThreadPoolExecutor(settings.threads, thread_name_prefix="ledger-api")
        asyncio.get_running_loop().set_default_executor(pool)
        executor.append(pool)
        opened = Services.open(settings.database_url) if owned else services
        assert opened is not None
        if settings.signing_key_file is not None:
            # Refuse to start with a key that cannot sign (unreadable, not published, retired): better
            # than checkpoints that fail one by one.
            signer = Signer.from_file(Path(settings.signing_key_file))
            opened.ledger.signing_keys.usable(signer)
            opened.signer = signer
        app.state[SERVICES_STATE] = opened
        app.state[KEY_STORE_STATE] = opened.keys
        opened.read_models.start()

    def shutdown(app: Litestar) -> None:
        opened: Services | None = app.state.get(SERVICES_STATE)
        if opened is not None:
            if owned:
                opened.close()
            else:
                opened.read_models.close()
        for pool in executor:
            pool.shutdown(wait=False)

    schemas = StructSchemas()
    app = _MsgspecOnly(
        route_handlers=ROUTES,
        dependencies={"services": Provide(_provide_services, sync_to_thread=False, use_cache=True)},
        guards=[authorize],
        exception_handlers=exception_handlers(),  # type: ignore[arg-type]
        on_startup=[startup],
        on_shutdown=[shutdown],
        openapi_config=openapi_config(),
        plugins=[schemas],
        cors_config=_cors(settings.cors_origins),
        request_max_body_size=BODY_SIZE_MAX,
        logging_config=None,
        debug=False,
    )
    finish(app, schemas)
    app.before_send.append(_allow_every_method(app))
    # The reference page, its files and the document: a policy that forbids every other origin.
    app.before_send.append(docs_headers(DOCUMENT_PATH))
    app.asgi_handler = AccessLog(app.asgi_handler)
    return app
