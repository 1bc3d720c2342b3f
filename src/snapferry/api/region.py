"""One region's ARM API for ``Microsoft.Compute`` disks and snapshots.

Handlers are thin: validate the path, call ``RegionService``, shape the answer. Reads (GET,
lists, operation status) run on the event loop: each is one indexed SQLite read in WAL mode,
which does not wait for writers, and a trip to a worker thread would cost more than the read
(ARM GET 337 -> 904 req/s under 32 clients). Changes run in worker threads. Changes answer
202 with ``Azure-AsyncOperation``, ``Location`` and ``Retry-After: 1`` (SDK 39 refuses 201);
the operation resource then reports progress. A region trusts only its front door: every
request but ``/snapferry/health`` carries the shared front-door key in ``x-snapferry-key``, and
the public base URL for the links it writes in ``x-snapferry-base``.
"""

import base64
import hmac
from typing import Annotated, Any, cast

from fastapi import Body, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry

from snapferry.api.common import (
    ArmMiddleware,
    ASGIApp,
    Receive,
    Scope,
    Send,
    check_api_version,
    error_response,
    install_error_handlers,
)
from snapferry.api.maintenance import maintenance_router
from snapferry.api.observe import add_metrics_route
from snapferry.api.peer import peer_router
from snapferry.control import render
from snapferry.control.access import BLOB_NAME, KEY_HEADER
from snapferry.control.errors import BadRequest, Unauthenticated
from snapferry.control.ids import ResourceId, check_group, check_subscription
from snapferry.control.models import BODY_MODELS, GrantAccess
from snapferry.control.peering import PeerService
from snapferry.control.service import RegionService
from snapferry.meta.records import Operation
from snapferry.replication.http import PREFIX as PEER_PREFIX

BASE_HEADER = "x-snapferry-base"
PREFIX = "/subscriptions/{subscriptionId}"
GROUP = PREFIX + "/resourceGroups/{resourceGroupName}"
COMPUTE = "/providers/Microsoft.Compute"

ApiVersion = Annotated[str, Query(alias="api-version", description="2020-12-01 or later")]
SkipToken = Annotated[str | None, Query(alias="$skiptoken", max_length=1024)]
Subscription = Annotated[str, Path(alias="subscriptionId")]
Group = Annotated[str, Path(alias="resourceGroupName")]


OPEN_PATHS = ("/snapferry/health", "/metrics")
"""What anyone may ask of a region (neither names nor secrets in the answers)."""


class FrontDoorOnly:
    """Refuse (401) any request without the front door's key; health checks and metrics pass,
    and so do peer calls, which carry the peer key instead (``snapferry.api.peer``)."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if path and path not in OPEN_PATHS and not path.startswith(PEER_PREFIX):
            given = dict(scope.get("headers") or []).get(KEY_HEADER.encode(), b"")
            if not hmac.compare_digest(given, self.key):
                response = error_response(
                    Unauthenticated("this endpoint is reached through the snapferry front door")
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def public_base(request: Request) -> str:
    """The base URL clients reached us by: the front door's, as it told us."""
    return request.headers.get(BASE_HEADER) or str(request.base_url).rstrip("/")


def operation_url(request: Request, subscription: str, location: str, op_id: str) -> str:
    version = request.query_params.get("api-version", "2024-03-02")
    return (
        f"{public_base(request)}/subscriptions/{subscription}{COMPUTE}/locations/{location}"
        f"/operations/{op_id}?api-version={version}"
    )


def accepted(
    request: Request, subscription: str, location: str, op: Operation, body: Any = None
) -> Response:
    """202 with the headers SDK 39 polls by."""
    url = operation_url(request, subscription, location, op.id)
    headers = {"Azure-AsyncOperation": url, "Location": url + "&monitor=true", "Retry-After": "1"}
    if body is None:
        return Response(status_code=202, headers=headers)
    return JSONResponse(body, 202, headers=headers)


def encode_token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_token(token: str | None) -> str | None:
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except ValueError:
        raise BadRequest("$skiptoken is not one this server issued") from None


def _add_resource_routes(app: FastAPI, service: RegionService, rtype: str) -> None:
    kind = "Disks" if rtype == "disks" else "Snapshots"
    param = "diskName" if rtype == "disks" else "snapshotName"
    put_model, patch_model = BODY_MODELS[rtype]
    item = f"{GROUP}{COMPUTE}/{rtype}/{{{param}}}"
    Name = Annotated[str, Path(alias=param)]  # noqa: N806 - a type alias

    def rid(sub: str, group: str, name: str) -> ResourceId:
        return ResourceId.of(sub, group, rtype, name)

    @app.put(item, operation_id=f"{kind}_CreateOrUpdate", status_code=202)
    def create_or_update(
        request: Request,
        sub: Subscription,
        group: Group,
        name: Name,
        api_version: ApiVersion,
        body: Annotated[put_model, Body()],  # type: ignore[valid-type]
    ) -> Response:
        check_api_version(api_version)
        resource, op = service.put(rid(sub, group, name), body)
        return accepted(request, sub, service.region.name, op, resource)

    @app.patch(item, operation_id=f"{kind}_Update", status_code=202)
    def update(
        request: Request,
        sub: Subscription,
        group: Group,
        name: Name,
        api_version: ApiVersion,
        body: Annotated[patch_model, Body()],  # type: ignore[valid-type]
    ) -> Response:
        check_api_version(api_version)
        resource, op = service.patch(rid(sub, group, name), body)
        return accepted(request, sub, service.region.name, op, resource)

    @app.get(item, operation_id=f"{kind}_Get")
    async def get(sub: Subscription, group: Group, name: Name, api_version: ApiVersion) -> Any:
        check_api_version(api_version)
        return JSONResponse(service.get(rid(sub, group, name)))

    @app.delete(item, operation_id=f"{kind}_Delete", status_code=202)
    def delete(
        request: Request, sub: Subscription, group: Group, name: Name, api_version: ApiVersion
    ) -> Response:
        check_api_version(api_version)
        op = service.delete(rid(sub, group, name))
        if op is None:
            return Response(status_code=204)
        return accepted(request, sub, service.region.name, op)

    @app.post(item + "/beginGetAccess", operation_id=f"{kind}_GrantAccess", status_code=202)
    def grant_access(
        request: Request,
        sub: Subscription,
        group: Group,
        name: Name,
        api_version: ApiVersion,
        body: Annotated[GrantAccess, Body()],
    ) -> Response:
        check_api_version(api_version)
        op = service.grant_access(rid(sub, group, name), body)
        return accepted(request, sub, service.region.name, op)

    @app.post(item + "/endGetAccess", operation_id=f"{kind}_RevokeAccess", status_code=202)
    def revoke_access(
        request: Request, sub: Subscription, group: Group, name: Name, api_version: ApiVersion
    ) -> Response:
        check_api_version(api_version)
        op = service.revoke_access(rid(sub, group, name))
        return accepted(request, sub, service.region.name, op)

    def page(request: Request, sub: str, group: str | None, token: str | None) -> dict[str, Any]:
        check_subscription(sub)
        if group is not None:
            check_group(group)
        values, after = service.list(sub, rtype, group, decode_token(token))
        body: dict[str, Any] = {"value": values}
        if after is not None:
            version = request.query_params.get("api-version")
            body["nextLink"] = (
                f"{public_base(request)}{request.url.path}?api-version={version}"
                f"&$skiptoken={encode_token(after)}"
            )
        return body

    @app.get(f"{GROUP}{COMPUTE}/{rtype}", operation_id=f"{kind}_ListByResourceGroup")
    async def list_by_group(
        request: Request,
        sub: Subscription,
        group: Group,
        api_version: ApiVersion,
        token: SkipToken = None,
    ) -> Any:
        check_api_version(api_version)
        return JSONResponse(page(request, sub, group, token))

    @app.get(f"{PREFIX}{COMPUTE}/{rtype}", operation_id=f"{kind}_List")
    async def list_all(
        request: Request, sub: Subscription, api_version: ApiVersion, token: SkipToken = None
    ) -> Any:
        check_api_version(api_version)
        return JSONResponse(page(request, sub, None, token))


def region_app(
    service: RegionService,
    *,
    key: str,
    peers: PeerService | None = None,
    peer_key: str = "",
    metrics: CollectorRegistry | None = None,
) -> FastAPI:
    """The ARM app of one region, answering only its front door (see module docstring), its
    peer API when ``peers`` is given, and Prometheus text on ``/metrics`` from ``metrics``."""
    app = FastAPI(
        title="snapferry ARM API",
        summary="Microsoft.Compute disks and snapshots, as azure-mgmt-compute 39 drives them",
        version="2024-03-02",
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    for rtype in ("disks", "snapshots"):
        _add_resource_routes(app, service, rtype)

    @app.get(
        f"{PREFIX}{COMPUTE}/locations/{{location}}/operations/{{operationId}}",
        operation_id="Operations_Get",
    )
    async def operation(
        request: Request,
        sub: Subscription,
        location: Annotated[str, Path()],
        op_id: Annotated[str, Path(alias="operationId")],
        api_version: ApiVersion,
        monitor: Annotated[bool, Query()] = False,
    ) -> Response:
        check_api_version(api_version)
        op = service.operation(sub, op_id)
        if not monitor:
            return JSONResponse(render.operation(op))
        if not op.done:
            url = operation_url(request, sub, location, op.id) + "&monitor=true"
            return Response(status_code=202, headers={"Location": url, "Retry-After": "1"})
        if op.result is not None:
            return JSONResponse(op.result)
        if op.status == "Failed":
            return JSONResponse(render.operation(op))
        return Response(status_code=204)

    @app.get("/snapferry/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok", "region": service.region.name}

    @app.get("/snapferry/copies", include_in_schema=False)
    def copies(
        subscription: Annotated[str, Query(max_length=64)],
        target: Annotated[str | None, Query(max_length=1024)] = None,
    ) -> dict[str, Any]:
        check_subscription(subscription)
        return {"value": service.copies.reports(subscription, target)}

    @app.get("/snapferry/copies/events", include_in_schema=False)
    def copy_events(
        subscription: Annotated[str, Query(max_length=64)],
        target: Annotated[str, Query(max_length=1024)],
        after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    ) -> dict[str, Any]:
        check_subscription(subscription)
        return {"value": service.copies.events(subscription, target, after)}

    app.include_router(maintenance_router(lambda: service.engine))
    if peers is not None:
        app.include_router(peer_router(peers, peer_key))
    if metrics is not None:
        add_metrics_route(app, metrics)

    app.add_middleware(FrontDoorOnly, key=key)
    app.add_middleware(ArmMiddleware)
    return app


ARM_ROOTS = ("subscriptions", "snapferry")
"""First path segments of the ARM app's routes (never region names)."""


class RegionRouter:
    """One region's whole HTTP surface on one port: paths under ``/<region>/``, and any path
    shaped like a SAS URL's (``/<account>/<container>/abcd``, another region's included, so it
    gets a storage-style refusal), are its data plane, whose URLs carry their own
    authorization; everything else is its ARM app, which answers only the front door."""

    def __init__(self, region: str, arm: ASGIApp, blob: ASGIApp) -> None:
        self.prefix = f"/{region}/"
        self.arm = arm
        self.blob = blob

    def _is_data(self, path: str) -> bool:
        if path.startswith(self.prefix):
            return True
        parts = path.split("/")
        return (
            len(parts) == 4
            and parts[3] == BLOB_NAME
            and not parts[1].startswith(("subscriptions", "snapferry"))
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._is_data(scope["path"]):
            await self.blob(scope, receive, send)
        else:
            await self.arm(scope, receive, send)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the region ARM routes (the front door serves it, merged)."""
    return region_app(cast(RegionService, None), key="").openapi()
