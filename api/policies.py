"""The rulebooks: list and read them (readers); publish one (admins)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.concurrency import sync_to_thread
from litestar.di import NamedDependency
from litestar.params import PathParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from ledger.access import ApiKey, Role
from ledger.api.auth import key_of, requires
from ledger.api.events import check_body
from ledger.api.openapi import SECURITY
from ledger.api.problems import MalformedBody
from ledger.api.responses import errors, success
from ledger.api.schemas import PoliciesView, PolicyBody, PolicyDocument, PolicySummary
from ledger.api.services import Services
from ledger.domain.errors import NotFound
from ledger.domain.events import VERSION_PATTERN, PolicyPublished
from ledger.results import PostResult
from ledger.wire import invalid_from, whole

__all__ = ["PoliciesController"]


_policy_body_decoder = msgspec.json.Decoder(PolicyBody, strict=True)


def _summary(policy: PolicyPublished) -> PolicySummary:
    return PolicySummary(
        version=policy.version,
        effective_from=policy.effective_from,
        published_on=policy.effective_on,
        posted_by=str(policy.posted_by),
    )


def _publish(services: Services, key: ApiKey, body: bytes) -> PostResult:
    check_body(body, '{"body": "<TOML>"}')
    try:
        document = _policy_body_decoder.decode(body)
    except msgspec.ValidationError as error:
        raise invalid_from(error) from None
    except msgspec.DecodeError as error:
        raise MalformedBody(f"the body is not well-formed JSON: {error}") from None
    except RecursionError:
        raise MalformedBody("the body nests too deeply to be a policy document") from None
    result = services.ledger.publish_policy(document.body, posted_by=key.principal)
    return result


class PoliciesController(Controller):
    """`/v1/policies`: one controller for the path's methods, so that OPTIONS lists them all."""

    path = "/v1/policies"

    @get(
        "/",
        opt=requires(Role.reader),
        tags=["policies"],
        summary="The published rulebooks",
        description="Every published policy, in publication order, without its text.",
        security=SECURITY,
        sync_to_thread=True,
        responses=errors(401, 403),
    )
    def list_policies(self, services: NamedDependency[Services]) -> PoliciesView:
        return PoliciesView(policies=[_summary(policy) for policy in services.ledger.policies()])

    @get(
        "/{version:str}",
        opt=requires(Role.reader),
        tags=["policies"],
        summary="One rulebook",
        description="A published policy with its TOML text.",
        security=SECURITY,
        sync_to_thread=True,
        responses=errors(401, 403, 404, 422),
    )
    def get_policy(
        self,
        services: NamedDependency[Services],
        version: Annotated[
            str, PathParameter(description="The policy's version.", pattern=whole(VERSION_PATTERN))
        ],
    ) -> PolicyDocument:
        for policy in services.ledger.policies():
            if policy.version == version:
                return PolicyDocument(
                    version=policy.version,
                    effective_from=policy.effective_from,
                    published_on=policy.effective_on,
                    posted_by=str(policy.posted_by),
                    body=policy.body,
                )
        raise NotFound(f"no policy {version}")

    @post(
        "/",
        opt=requires(Role.admin),
        tags=["policies"],
        summary="Publish a rulebook",
        description=(
            "Validate a TOML policy and publish it into the log as `policy.published`, in force from its "
            "`effective_from`. Publishing the same version with the same text again replays (200); the same "
            "version with other text is refused (422)."
        ),
        security=SECURITY,
        status_code=HTTP_201_CREATED,
        responses={HTTP_200_OK: success(PostResult, "The same policy was published before; nothing new.")}
        | errors(400, 401, 403, 409, 413, 422),
    )
    async def publish_policy(
        self, request: Request[Any, Any, Any], services: NamedDependency[Services]
    ) -> Response[PostResult]:
        body = await request.body()
        result = await sync_to_thread(_publish, services, key_of(request), body)
        status = HTTP_200_OK if all(item.replayed for item in result.results) else HTTP_201_CREATED
        return Response(result, status_code=status)
