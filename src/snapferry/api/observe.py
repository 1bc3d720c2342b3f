"""Every request observed: an id, a count and a time in the server's metrics, and a log line.

The id goes back in ``x-ms-request-id`` (as Azure sends it) and rides on every log line written
while the request is served (``REQUEST_ID``), so a user's failed call can be found in the log.
The front door makes the id and passes it to the region in ``x-snapferry-request-id``: one id
for both logs. The log line names the method, the path (never the query: it may hold a SAS),
the status and the time — at DEBUG for answers below 400, INFO for the caller's mistakes,
WARNING for 5xx.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid
from contextvars import ContextVar

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CollectorRegistry

from snapferry.api.common import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    route_template,
)
from snapferry.control.access import KEY_HEADER
from snapferry.metrics import CONTENT_TYPE, HttpMetrics, exposition

log = logging.getLogger("snapferry.requests")

REQUEST_ID: ContextVar[str | None] = ContextVar("snapferry_request_id", default=None)
"""The id of the request being served (None outside one)."""
PASSED_ID_HEADER = "x-snapferry-request-id"
"""Carries the front door's request id to a region."""
ROUTE_KEY = "snapferry.route"
"""A scope entry naming the route, for apps without a router (the data plane)."""
_ID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ID_HEADER = b"x-ms-request-id"


def route_of(scope: Scope) -> str:
    """The route template that served the request (``unmatched`` when none did): never the
    names in a path, so the metrics stay few."""
    named = scope.get(ROUTE_KEY)
    if named:
        return str(named)
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return "unmatched"
    if path.endswith(":path}"):  # a catch-all (the front door's forwarding)
        return route_template(str(scope["path"]))
    return path


class Observed:
    """Wraps a server's app: ids, metrics (when given) and a log line for each request.
    ``front_door_key``: a region's; a request that carries it (``x-snapferry-key``: its front
    door) passes its id in ``x-snapferry-request-id``. Any other request gets an id of its own."""

    def __init__(
        self, app: ASGIApp, metrics: HttpMetrics | None, *, front_door_key: str | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.key = front_door_key.encode() if front_door_key else None

    def _id(self, scope: Scope) -> str:
        if self.key is not None:
            headers = dict(scope.get("headers") or ())
            passed = headers.get(PASSED_ID_HEADER.encode(), b"")
            given = headers.get(KEY_HEADER.encode(), b"")
            if _ID.fullmatch(passed) and hmac.compare_digest(given, self.key):
                return str(passed.decode())
        return str(uuid.uuid4())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self._id(scope)
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500  # unless an answer starts
        answered = False

        async def answer(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.body" and not message.get("more_body"):
                answered = True
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers") or ())
                if not any(name.lower() == _ID_HEADER for name, _ in headers):
                    headers.append((_ID_HEADER, request_id.encode()))
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, answer)
        except Exception:
            # the framework raises again what its error handler already answered (and logged);
            # the server would drop the connection for it, and the client's next request with it
            if not answered:
                raise
        finally:
            try:
                self._tell(scope, status, time.perf_counter() - started)
            finally:
                REQUEST_ID.reset(token)

    def _tell(self, scope: Scope, status: int, seconds: float) -> None:
        route, method = route_of(scope), str(scope["method"])
        if self.metrics is not None:
            self.metrics.observe(route, method, status, seconds)
        level = logging.DEBUG if status < 400 else logging.INFO if status < 500 else logging.WARNING
        if not log.isEnabledFor(level):
            return
        path = printable(str(scope["path"])[:512])  # decoded: it may hold anything
        log.log(
            level,
            "%s %s answered %d in %.1f ms",
            method,
            path,
            status,
            seconds * 1000,
            extra={
                "method": method,
                "path": path,
                "route": route,
                "status": status,
                "durationMs": round(seconds * 1000, 3),
            },
        )


_CONTROL = {i: f"\\x{i:02x}" for i in (*range(32), 127)}


def printable(text: str) -> str:
    """text with control characters escaped (``\\x0a``): a caller's bytes cannot start a log
    line of their own."""
    return text.translate(_CONTROL)


def add_metrics_route(app: FastAPI, registry: CollectorRegistry) -> None:
    """``GET /metrics``: the registry as Prometheus text (read in a thread: a collector may
    query the database)."""

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body = await run_in_threadpool(exposition, registry)
        return Response(body, media_type=CONTENT_TYPE)
