"""The peer API of a region: what other regions ask of it to copy its snapshots (see
``snapferry.replication.http`` for the routes and ``control.peering`` for their meaning).

Only peers get in: every request carries the cloud's peer key (``x-snapferry-peer-key``), which
is not the front door's, and data routes need a system grant besides. Nothing here is logged
with its query (the grant).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse

from snapferry.control.errors import BadRequest, Unauthenticated
from snapferry.control.peering import PeerService
from snapferry.replication.http import (
    ANCHOR_HEADER,
    CONTENT_ID_HEADER,
    ENCODING_HEADER,
    LENGTH_HEADER,
    PEER_KEY_HEADER,
    PREFIX,
    frames_head,
)

MAX_BODY = 1 << 20
PIECE = 1 << 20
"""Bodies go out a MiB at a time: one multi-MiB write makes asyncio's transport buffer it
and move the rest down on every send, which costs more than the bytes themselves."""


def _bytes_response(parts: list[bytes], headers: dict[str, str] | None = None) -> Response:
    """The parts, one after another, as the body (never joined: no copy)."""

    async def pieces() -> AsyncIterator[memoryview]:
        for part in parts:
            view = memoryview(part)
            for at in range(0, len(view), PIECE):
                yield view[at : at + PIECE]

    size = sum(len(p) for p in parts)
    headers = {**(headers or {}), "content-length": str(size)}
    return StreamingResponse(pieces(), 200, headers=headers, media_type="application/octet-stream")


def peer_router(service: PeerService, key: str) -> APIRouter:
    """Routes under ``/snapferry/peer/v1`` for one region."""
    router = APIRouter(include_in_schema=False)
    secret = key.encode()

    async def admitted(request: Request) -> bytes:
        given = request.headers.get(PEER_KEY_HEADER, "").encode("utf-8", "replace")
        if not secret or not hmac.compare_digest(given, secret):
            raise Unauthenticated("only snapferry regions that share the peer key may call here")
        body = await request.body()
        if len(body) > MAX_BODY:
            raise BadRequest("the request body is too large")
        return body

    def doc_of(body: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise BadRequest("the request body must be a JSON object")
        return doc

    @router.post(f"{PREFIX}/health")
    async def health(request: Request) -> Response:
        await admitted(request)
        return JSONResponse({"region": service.region})

    @router.post(f"{PREFIX}/resolve")
    async def resolve(request: Request) -> Response:
        doc = doc_of(await admitted(request))
        resource_id = doc.get("resourceId")
        if not isinstance(resource_id, str):
            raise BadRequest("resourceId must be a string")
        found = await run_in_threadpool(service.resolve, resource_id)
        if found is None:
            return JSONResponse(
                {"error": {"code": "ResourceNotFound", "message": "no such snapshot here"}}, 404
            )
        return JSONResponse(found.to_dict())

    @router.post(f"{PREFIX}/grant")
    async def grant(request: Request) -> Response:
        doc = doc_of(await admitted(request))
        granted = await run_in_threadpool(service.grant, doc.get("uniqueId"))  # type: ignore[arg-type]
        return JSONResponse({"sas": granted.sas, "expiresAt": granted.expires_at})

    @router.post(PREFIX + "/snapshots/{engine_id}/plan")
    async def plan(request: Request, engine_id: str) -> Response:
        doc = doc_of(await admitted(request))
        query = dict(request.query_params)
        anchor, delta = await run_in_threadpool(
            service.plan, engine_id, query, doc.get("candidates"), doc.get("full", False)
        )
        encoded = await run_in_threadpool(delta.encode)  # the plan
        headers = {ANCHOR_HEADER: anchor} if anchor else {}
        return _bytes_response([encoded], headers)

    @router.post(PREFIX + "/snapshots/{engine_id}/frames")
    async def frames(request: Request, engine_id: str) -> Response:
        body = await admitted(request)
        query = dict(request.query_params)
        found = await run_in_threadpool(service.frames, engine_id, query, body)
        return _bytes_response([frames_head(found), *found])

    @router.post(PREFIX + "/snapshots/{engine_id}/pages")
    async def pages(request: Request, engine_id: str) -> Response:
        body = await admitted(request)
        query = dict(request.query_params)
        frame = await run_in_threadpool(service.pages, engine_id, query, body)
        headers = {
            CONTENT_ID_HEADER: frame.content_id.hex(),
            LENGTH_HEADER: str(frame.length),
            ENCODING_HEADER: "zstd" if frame.compressed else "identity",
        }
        return Response(frame.payload, 200, headers=headers, media_type="application/octet-stream")

    return router
