"""The peer API of a region: what other regions ask of it to copy its snapshots (see
``snapferry.replication.http`` for the routes and ``control.peering`` for their meaning).

Only peers get in: every request carries the cloud's peer key (``x-snapferry-peer-key``), which
is not the front door's, and data routes need a system grant besides. Nothing here is logged
with its query (the grant).
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from snapferry.control.errors import BadRequest, Unauthenticated
from snapferry.control.peering import PeerService
from snapferry.replication.http import (
    ANCHOR_HEADER,
    CONTENT_ID_HEADER,
    ENCODING_HEADER,
    LENGTH_HEADER,
    PEER_KEY_HEADER,
    PREFIX,
    join_frames,
)

MAX_BODY = 1 << 20


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
        return Response(encoded, 200, headers=headers, media_type="application/octet-stream")

    @router.post(PREFIX + "/snapshots/{engine_id}/frames")
    async def frames(request: Request, engine_id: str) -> Response:
        body = await admitted(request)
        query = dict(request.query_params)
        found = await run_in_threadpool(service.frames, engine_id, query, body)
        return Response(join_frames(found), 200, media_type="application/octet-stream")

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
