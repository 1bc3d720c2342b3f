"""The front door app: authenticates, authorizes, serves resource groups and principals, and
routes compute calls to regions (see ``routing``)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from snapferry.api.common import ArmMiddleware, error_response, install_error_handlers
from snapferry.api.frontdoor.groups import Groups
from snapferry.api.frontdoor.links import RegionLinks, Reply
from snapferry.api.frontdoor.routing import GROUP_LIST, ITEM, OPERATION, SUB_LIST, Index, Router
from snapferry.api.observe import add_metrics_route
from snapferry.api.region import openapi_document
from snapferry.control.errors import (
    BadRequest,
    LinkedAuthorizationFailed,
    OperationNotFound,
    RegionUnavailable,
    ResourceGroupNotEmpty,
    ResourceNotFound,
    Unauthenticated,
)
from snapferry.control.ids import ResourceId, check_subscription, group_key, normalize_location
from snapferry.control.models import BODY_MODELS
from snapferry.errors import SnapferryError
from snapferry.identity import MAX_LIFETIME_SECONDS, AuthorizationFailed, Principal, Registry

WRITE_METHODS = {"PUT", "PATCH", "DELETE", "POST"}
ApiVersion = Annotated[str, Query(alias="api-version")]
Sub = Annotated[str, Path(alias="subscriptionId")]
GroupName = Annotated[str, Path(alias="resourceGroupName")]


class FrontDoor:
    """The state the front door's handlers share."""

    def __init__(
        self,
        registry: Registry,
        groups: Groups,
        links: RegionLinks,
        index: Index,
        *,
        public_url: str | None = None,
    ):
        self.registry = registry
        self.groups = groups
        self.links = links
        self.router = Router(links, index)
        self.public_url = public_url.rstrip("/") if public_url else None

    def base(self, request: Request) -> str:
        """The base URL of the links we hand out (operations, nextLink): the configured public
        URL, so a forged Host header cannot send a client's token elsewhere; without one (a
        front door listening on every address), the Host the client used."""
        return self.public_url or str(request.base_url).rstrip("/")

    def authenticate(self, header: str) -> Principal:
        """The principal an ``Authorization: Bearer`` header speaks for (blocking)."""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "the request needs an Authorization: Bearer <token> header; "
                "`snapferry token create` makes a token"
            )
        return self.registry.authenticate(token.strip())

    async def principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        return await run_in_threadpool(self.authenticate, header)

    @staticmethod
    def authorize(principal: Principal, subscription: str, *, write: bool, action: str) -> None:
        allowed = principal.can_write if write else principal.can_read
        if not allowed(subscription):
            raise AuthorizationFailed(
                f"the client {principal.id!r} does not have authorization to perform action "
                f"{action!r} over scope '/subscriptions/{subscription[:64]}' or the scope is "
                "invalid"
            )


def _reply(reply: Reply) -> Response:
    return Response(reply.body, reply.status, headers=reply.headers)


def _json_or_none(body: bytes) -> Any:
    """The body's JSON, or None if it is not JSON (or nested too deep to read)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _check_source(principal: Principal, rtype: str, doc: Any) -> None:
    """A copy reads its source: the caller must be allowed to read the source's subscription.
    The body is read with the region's own model, so the source checked here is the one the
    region will use; a body it cannot read is left to the region to refuse."""
    try:
        body = BODY_MODELS[rtype][0].model_validate(doc)
        source = body.properties.creation_data.source_resource_id  # type: ignore[attr-defined]
        sub = ResourceId.parse(source).subscription if source else None
    except (ValidationError, SnapferryError):
        return
    if sub is not None and not principal.can_read(sub):
        raise LinkedAuthorizationFailed(
            f"the client {principal.id!r} cannot read the source {str(source)[:300]!r}",
            target="properties.creationData.sourceResourceId",
        )


def _admit(
    door: FrontDoor, header: str, method: str, path: str, query: str
) -> tuple[Principal, re.Match[str], str | None]:
    """Everything a compute call checks before it travels: the caller's token, the path, the
    caller's role on the subscription, the resource group; and the index's region for an item.
    Runs on the event loop: three indexed reads of the front door's SQLite (WAL: never waiting
    for a writer) cost less than a trip to a worker thread."""
    principal = door.authenticate(header)
    if match := OPERATION.fullmatch(path):
        # The monitor form hands out an operation's result (an access grant's SAS): only a
        # caller who could have made the grant may read it.
        monitor = any(k.lower() == "monitor" for k, _ in parse_qsl(query, keep_blank_values=True))
        door.authorize(principal, match["sub"], write=monitor, action="operations/read")
        return principal, match, None
    match = ITEM.fullmatch(path) or GROUP_LIST.fullmatch(path) or SUB_LIST.fullmatch(path)
    if match is None or (method != "GET" and "name" not in match.groupdict()):
        raise ResourceNotFound(f"no snapferry API answers {method} {path[:200]}")
    sub = check_subscription(match["sub"])
    action = f"Microsoft.Compute/{match['type']}/{'write' if method != 'GET' else 'read'}"
    door.authorize(principal, sub, write=method in WRITE_METHODS, action=action)
    parts = match.groupdict()
    if parts.get("rg") is not None:
        door.groups.get(sub, parts["rg"])
    if "name" not in parts:
        return principal, match, None
    rid = ResourceId.of(sub, parts["rg"], parts["type"], parts["name"])
    return principal, match, door.router.index.get(rid.key)


async def _compute(door: FrontDoor, request: Request) -> Response:
    path, method, base = request.url.path, request.method, door.base(request)
    header = request.headers.get("authorization", "")
    principal, match, known = _admit(door, header, method, path, request.url.query)
    qs = "?" + request.url.query if request.url.query else ""
    parts = match.groupdict()
    if "op" in parts:
        location = normalize_location(parts["loc"])
        if location not in door.links.urls:
            raise OperationNotFound(f"operation {parts['op'][:64]!r} was not found")
        reply = await door.links.call(
            location, "GET", quote(path) + qs, base=base, principal=principal.id
        )
        return _reply(reply)
    if "name" not in parts:
        query = dict(request.query_params)
        merged = await door.router.list_merged(path, query, base=base, principal=principal.id)
        return _reply(merged) if isinstance(merged, Reply) else JSONResponse(merged)
    rid = ResourceId.of(parts["sub"], parts["rg"], parts["type"], parts["name"])
    item_path = path.removesuffix(parts["action"] or "")
    body = await request.body()
    if method == "PUT":
        doc = _json_or_none(body)
        _check_source(principal, rid.rtype, doc)
        async with door.router.in_group(rid.group_key), door.router.exclusive(rid.key):
            door.groups.get(rid.subscription, rid.resource_group)  # not deleted while we waited
            region = await door.router.route_put(item_path, rid.key, doc, base=base, known=known)
            answer = await _forward_item(door, request, region, principal, base, body)
            assert answer is not None
            if answer.status < 300:
                await run_in_threadpool(door.router.index.set, rid.key, region)
        return _reply(answer)
    found = await door.router.locate(item_path, rid.key, base=base, known=known)
    answer = await _forward_item(door, request, found, principal, base, body)
    if known is not None and answer is not None and _gone(answer, method):
        # The index named a region that no longer holds it: ask them all once.
        await run_in_threadpool(door.router.index.drop, rid.key)
        found = await door.router.locate(item_path, rid.key, base=base, known=None)
        answer = await _forward_item(door, request, found, principal, base, body)
    if answer is None:
        if method == "DELETE":
            return Response(status_code=204)
        raise ResourceNotFound(
            f"{'disk' if rid.rtype == 'disks' else 'snapshot'} {rid.name!r} was not found in "
            f"resource group {rid.resource_group!r}",
            target=rid.name,
        )
    return _reply(answer)


async def _forward_item(
    door: FrontDoor,
    request: Request,
    region: str | None,
    principal: Principal,
    base: str,
    body: bytes,
) -> Reply | None:
    """The region's answer to the request, or None if no region holds the resource."""
    if region is None:
        return None
    qs = "?" + request.url.query if request.url.query else ""
    return await door.links.call(
        region,
        request.method,
        quote(request.url.path) + qs,
        base=base,
        principal=principal.id,
        headers=dict(request.headers),
        body=body or None,
    )


def _gone(reply: Reply, method: str) -> bool:
    """Whether a region's answer says it does not hold the resource (a DELETE of nothing
    answers 204)."""
    if method == "DELETE" and reply.status == 204:
        return True
    if reply.status != 404:
        return False
    try:
        return bool(reply.json()["error"]["code"] == "ResourceNotFound")
    except (ValueError, KeyError, TypeError):
        return False


def _add_group_routes(app: FastAPI, door: FrontDoor) -> None:
    item = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"

    async def allowed(request: Request, sub: str, *, write: bool) -> None:
        principal = await door.principal(request)
        check_subscription(sub)
        door.authorize(
            principal,
            sub,
            write=write,
            action="Microsoft.Resources/subscriptions/resourceGroups/"
            + ("write" if write else "read"),
        )

    @app.put(item, operation_id="ResourceGroups_CreateOrUpdate")
    async def put_group(request: Request, sub: Sub, name: GroupName, v: ApiVersion) -> Response:
        await allowed(request, sub, write=True)
        doc = _json_or_none(await request.body())
        group, created = await run_in_threadpool(door.groups.put, sub, name, doc)
        return JSONResponse(group.to_arm(), 201 if created else 200)

    @app.patch(item, operation_id="ResourceGroups_Update")
    async def patch_group(request: Request, sub: Sub, name: GroupName, v: ApiVersion) -> Any:
        await allowed(request, sub, write=True)
        doc = _json_or_none(await request.body())
        return (await run_in_threadpool(door.groups.patch, sub, name, doc)).to_arm()

    @app.get(item, operation_id="ResourceGroups_Get")
    async def get_group(request: Request, sub: Sub, name: GroupName, v: ApiVersion) -> Any:
        await allowed(request, sub, write=False)
        return (await run_in_threadpool(door.groups.get, sub, name)).to_arm()

    @app.head(item, operation_id="ResourceGroups_CheckExistence")
    async def head_group(request: Request, sub: Sub, name: GroupName, v: ApiVersion) -> Response:
        await allowed(request, sub, write=False)
        found = await run_in_threadpool(door.groups.exists, sub, name)
        return Response(status_code=204 if found else 404)

    @app.delete(item, operation_id="ResourceGroups_Delete")
    async def delete_group(request: Request, sub: Sub, name: GroupName, v: ApiVersion) -> Response:
        await allowed(request, sub, write=True)
        async with door.router.group_closing(group_key(sub, name)):
            return await _delete_group(door, request, sub, name, v)

    async def _delete_group(
        door: FrontDoor, request: Request, sub: str, name: str, v: str
    ) -> Response:
        if not await run_in_threadpool(door.groups.exists, sub, name):
            return Response(status_code=204)
        base = door.base(request)
        for rtype in ("disks", "snapshots"):
            path = f"{item.format(subscriptionId=sub, resourceGroupName=name)}"
            path += f"/providers/Microsoft.Compute/{rtype}"
            page = await door.router.list_merged(path, {"api-version": v}, base=base, principal="")
            if isinstance(page, Reply):
                return _reply(page)
            if page["value"]:
                raise ResourceGroupNotEmpty(
                    f"resource group {name!r} still holds {rtype}; delete them first "
                    "(snapferry never deletes data with its group)",
                    target=name,
                )
        await run_in_threadpool(door.groups.delete, sub, name)
        return Response(status_code=200)

    @app.get("/subscriptions/{subscriptionId}/resourceGroups", operation_id="ResourceGroups_List")
    async def list_groups(request: Request, sub: Sub, v: ApiVersion) -> Any:
        await allowed(request, sub, write=False)
        groups = await run_in_threadpool(door.groups.list, sub)
        return {"value": [g.to_arm() for g in groups]}


def _add_admin_routes(app: FastAPI, door: FrontDoor) -> None:
    async def admin(request: Request) -> Principal:
        principal = await door.principal(request)
        if not principal.admin:
            raise AuthorizationFailed("only the cloud's admin principal manages principals")
        return principal

    @app.post("/snapferry/principals", operation_id="Principals_Create")
    async def create_principal(request: Request) -> Any:
        await admin(request)
        doc = _json_or_none(await request.body())
        if not isinstance(doc, dict):
            raise BadRequest("the request body must be a JSON object")
        sub, role = doc.get("subscription"), doc.get("role", "Contributor")
        name = doc.get("name") or f"{role}-{sub}"
        lifetime = doc.get("lifetimeSeconds", 365 * 86400)
        if not isinstance(sub, str) or not isinstance(role, str) or not isinstance(name, str):
            raise BadRequest("subscription, role and name must be strings")
        if (
            not isinstance(lifetime, int)
            or isinstance(lifetime, bool)
            or not 0 < lifetime <= MAX_LIFETIME_SECONDS
        ):  # checked before the principal exists: a refusal leaves nothing behind
            raise BadRequest(
                f"lifetimeSeconds must be a whole number from 1 to {MAX_LIFETIME_SECONDS}",
                target="lifetimeSeconds",
            )
        check_subscription(sub)

        def make() -> dict[str, Any]:
            principal = door.registry.create_principal(name, {sub: role})
            token, expires = door.registry.mint(principal.id, lifetime)
            return {
                "principalId": principal.id,
                "tenantId": principal.tenant,
                "name": principal.name,
                "subscription": sub,
                "role": principal.role_for(sub),
                "token": token,
                "expiresOn": int(expires),
            }

        return await run_in_threadpool(make)

    @app.post("/snapferry/principals/{principalId}/disable", operation_id="Principals_Disable")
    async def disable_principal(
        request: Request, principal_id: Annotated[str, Path(alias="principalId")]
    ) -> Any:
        caller = await admin(request)
        if principal_id == caller.id:
            raise BadRequest(
                "the admin cannot disable itself: the cloud would be left without one",
                target="principalId",
            )
        principal = await run_in_threadpool(door.registry.disable, principal_id)
        return {"principalId": principal.id, "enabled": principal.enabled}

    @app.put(
        "/snapferry/principals/{principalId}/roles/{subscriptionId}",
        operation_id="Principals_SetRole",
    )
    async def set_role(
        request: Request,
        principal_id: Annotated[str, Path(alias="principalId")],
        sub: Sub,
    ) -> Any:
        """Give a principal a role on one more subscription (or replace its role there)."""
        await admin(request)
        doc = _json_or_none(await request.body())
        role = doc.get("role") if isinstance(doc, dict) else None
        if not isinstance(role, str):
            raise BadRequest('the body must be {"role": "Owner|Contributor|Reader"}')
        check_subscription(sub)
        principal = await run_in_threadpool(door.registry.set_role, principal_id, sub, role)
        return {"principalId": principal.id, "subscription": sub, "role": principal.role_for(sub)}


COPY_READ_SECONDS = 10.0
"""How long the copy reports wait for each region: a frozen region (its source, say) is listed
as unreachable instead of holding up what the others say about a stalled copy."""


def _add_copy_routes(app: FastAPI, door: FrontDoor) -> None:
    @app.get("/snapferry/copies", operation_id="Copies_List")
    async def list_copies(
        request: Request,
        subscription: Annotated[str, Query(max_length=64)],
        target: Annotated[str | None, Query(max_length=1024)] = None,
    ) -> Any:
        """Where the copies into every reachable region stand (``snapferry copy list|show``)."""
        principal = await door.principal(request)
        check_subscription(subscription)
        door.authorize(principal, subscription, write=False, action="snapferry/copies/read")
        query = f"?subscription={quote(subscription)}"
        if target is not None:
            query += f"&target={quote(target)}"
        names = await _regions_of(door, target)
        replies = await door.links.call_reachable(
            "GET",
            "/snapferry/copies" + query,
            base=door.base(request),
            principal=principal.id,
            timeout=COPY_READ_SECONDS,
            regions=names,
        )
        value: list[Any] = []
        for region in names:
            reply = replies.get(region)
            if reply is not None and reply.status == 200:
                value.extend({**item, "region": region} for item in reply.json()["value"])
        missing = [r for r in names if r not in replies]
        return {"value": value, "unreachable": missing}

    @app.get("/snapferry/copies/events", operation_id="Copies_Events")
    async def copy_events(
        request: Request,
        subscription: Annotated[str, Query(max_length=64)],
        target: Annotated[str, Query(max_length=1024)],
        after: Annotated[str | None, Query(max_length=1024)] = None,
    ) -> Any:
        """What happened to the copy into target, in order (``snapferry copy events``): from
        the region that holds its events (its target's region; a deleted target's too).
        ``after``: the ``next`` of an earlier answer, for only what came since."""
        principal = await door.principal(request)
        check_subscription(subscription)
        door.authorize(principal, subscription, write=False, action="snapferry/copies/read")
        since = _event_cursor(after)
        names = await _regions_of(door, target)
        asked = await asyncio.gather(
            *(
                door.links.call(
                    region,
                    "GET",
                    f"/snapferry/copies/events?subscription={quote(subscription)}"
                    f"&target={quote(target)}&after={since.get(region, 0)}",
                    base=door.base(request),
                    principal=principal.id,
                    timeout=COPY_READ_SECONDS,
                )
                for region in names
            ),
            return_exceptions=True,
        )
        value: list[Any] = []
        cursor = dict(since)
        missing = []
        for region, reply in zip(names, asked, strict=True):
            if isinstance(reply, RegionUnavailable):
                missing.append(region)
                continue
            if isinstance(reply, BaseException):
                raise reply
            if reply.status != 200:
                continue
            for item in reply.json()["value"]:
                cursor[region] = max(cursor.get(region, 0), int(item["id"]))
                value.append({**item, "region": region})
        value.sort(key=lambda item: (item["at"], item["id"]))
        return {"value": value, "next": _encode_cursor(cursor), "unreachable": missing}


async def _regions_of(door: FrontDoor, target: str | None) -> list[str]:
    """The regions to ask about a copy into target: the target's own when the front door knows
    it (its copy's reports and events live there), else every region (a deleted target's events
    are kept, and the index is a cache)."""
    if target is None:
        return door.links.names
    try:
        key = ResourceId.parse(target).key
    except SnapferryError:
        return door.links.names
    region = await run_in_threadpool(door.router.index.get, key)
    return [region] if region in door.links.names else door.links.names


def _event_cursor(text: str | None) -> dict[str, int]:
    """The last event id seen per region, from a ``next`` (``region:id,region:id``)."""
    out: dict[str, int] = {}
    for part in (text or "").split(","):
        region, _, last = part.partition(":")
        if region and last.isdigit() and len(last) <= 18:
            out[region] = int(last)
        elif part:
            raise BadRequest(f"after must be the next of an earlier answer, not {text!r}")
    return out


def _encode_cursor(cursor: dict[str, int]) -> str:
    return ",".join(f"{region}:{last}" for region, last in sorted(cursor.items()))


def frontdoor_app(door: FrontDoor, metrics: CollectorRegistry | None = None) -> FastAPI:
    """The one ARM endpoint for every region (and Prometheus text on ``/metrics`` from
    ``metrics``)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await door.links.open()
        try:
            yield
        finally:
            await door.links.close()

    app = FastAPI(title="snapferry", docs_url=None, redoc_url=None, lifespan=lifespan)
    install_error_handlers(app)
    _add_group_routes(app, door)
    _add_admin_routes(app, door)
    _add_copy_routes(app, door)

    @app.get("/snapferry/health", include_in_schema=False)
    async def health() -> dict[str, Any]:
        return {"status": "ok", "regions": door.links.names, "time": time.time()}

    if metrics is not None:
        add_metrics_route(app, metrics)

    @app.api_route(
        "/subscriptions/{rest:path}",
        methods=["GET", "PUT", "PATCH", "DELETE", "POST"],
        include_in_schema=False,
    )
    async def compute(request: Request) -> Response:
        try:
            return await _compute(door, request)
        except SnapferryError as exc:
            return error_response(exc)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            own = get_openapi(title="snapferry", version="2024-03-02", routes=app.routes)
            doc = openapi_document()
            doc["info"]["title"] = "snapferry"
            doc["paths"].update(own.get("paths", {}))
            for name, schema in own.get("components", {}).get("schemas", {}).items():
                doc.setdefault("components", {}).setdefault("schemas", {})[name] = schema
            doc["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
            doc["security"] = [{"bearer": []}]
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(ArmMiddleware)
    return app
