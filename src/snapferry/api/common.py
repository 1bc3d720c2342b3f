"""What every snapferry ARM app shares: the error envelope, api-version rules, canonical
(case-insensitive) paths and the request body limit."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from snapferry.control import errors as arm
from snapferry.control.models import invalid_request
from snapferry.errors import (
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    NotReady,
    PeerUnavailable,
    RegionBusy,
    SnapferryError,
    StorageFault,
    StorageIOError,
    TransientStoreError,
)
from snapferry.faults import named

log = logging.getLogger("snapferry.api")

MIN_API_VERSION = "2020-12-01"
MAX_BODY_BYTES = 1024 * 1024
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# --- errors ----------------------------------------------------------------------------------
_STATUS_BY_CODE = {"InvalidAuthenticationToken": 401, "AuthorizationFailed": 403}


def _status(exc: SnapferryError) -> int:
    status = getattr(exc, "status", None) or _STATUS_BY_CODE.get(exc.code)
    if isinstance(status, int):
        return status
    for kind, code in (
        (StorageIOError, 500),
        (StorageFault, 503),
        (InvalidInput, 400),
        (NotFound, 404),
        (NotReady, 409),
        (Conflict, 409),
        (RegionBusy, 503),
        (PeerUnavailable, 503),
        (TransientStoreError, 503),
        (IntegrityError, 500),
    ):
        if isinstance(exc, kind):
            return code
    return 500


def error_body(code: str, message: str, target: str | None = None) -> dict[str, Any]:
    """The ARM error envelope."""
    error: dict[str, Any] = {"code": code, "message": message}
    if target:
        error["target"] = target
    return {"error": error}


def error_response(exc: Exception) -> JSONResponse:
    """The ARM error envelope for a typed error, or for any error its storage raised (named:
    ``snapferry.faults``, logged once a minute). Never carries Retry-After on a 4xx: azure-core
    would retry it."""
    typed = named(exc)
    if typed is None:
        log.error("unexpected error", exc_info=exc)
        return JSONResponse(
            error_body("InternalServerError", "the server failed to handle the request"), 500
        )
    exc = typed
    status = _status(exc)
    target = exc.details.get("target")
    code = exc.code if status != 404 or exc.code != "NotFound" else "ResourceNotFound"
    if not isinstance(exc, StorageFault):  # a storage fault was logged once a minute
        log.log(
            logging.ERROR if status >= 500 else logging.INFO,
            "answered %d %s: %s",
            status,
            code,
            exc.message,
        )
    headers = None
    if isinstance(exc, StorageFault):
        headers = {"Retry-After": str(exc.retry_after)}
    elif status == 503:
        headers = {"Retry-After": "1"}
    return JSONResponse(
        error_body(code, exc.message, str(target) if target else None), status, headers=headers
    )


def _validation_error(exc: RequestValidationError) -> SnapferryError:
    problems = exc.errors()
    for err in problems:
        if tuple(err.get("loc", ())) == ("query", "api-version"):
            return arm.MissingApiVersion(
                "the api-version query parameter is required (for example 2024-03-02)"
            )
    return invalid_request(problems)


_FRAMEWORK_ERRORS = {
    400: ("InvalidRequestContent", "the request body could not be read (is it UTF-8 JSON?)"),
    404: ("NotFound", "no snapferry API answers this path"),
    405: ("MethodNotAllowed", "this path does not answer that method"),
}


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as an ARM envelope; unexpected ones as a 500 with no details."""

    async def typed(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, SnapferryError)
        return error_response(exc)

    async def invalid(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(_validation_error(exc))

    async def unexpected(_: Request, exc: Exception) -> Response:
        return error_response(exc)

    async def framework(_: Request, exc: Exception) -> Response:
        # The framework's own answers (no route, method not served, undecodable body) in the
        # ARM envelope too.
        assert isinstance(exc, StarletteHTTPException)
        code, message = _FRAMEWORK_ERRORS.get(
            exc.status_code, ("BadRequest", "the request cannot be served")
        )
        headers = (
            {"Allow": exc.headers["Allow"]} if exc.headers and "Allow" in exc.headers else None
        )
        return JSONResponse(error_body(code, message), exc.status_code, headers=headers)

    app.add_exception_handler(SnapferryError, typed)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, framework)
    app.add_exception_handler(Exception, unexpected)


def check_api_version(value: str) -> str:
    """value if it is an api-version snapferry serves (any from 2020-12-01 on)."""
    if not _API_VERSION.fullmatch(value) or value[:10] < MIN_API_VERSION:
        raise arm.InvalidApiVersion(
            f"api-version {value[:40]!r} is not supported; use {MIN_API_VERSION} or later "
            "(for example 2024-03-02)"
        )
    return value


# --- canonical paths -------------------------------------------------------------------------
_KEYWORDS = {
    word.lower(): word
    for word in (
        "subscriptions",
        "resourceGroups",
        "providers",
        "Microsoft.Compute",
        "disks",
        "snapshots",
        "locations",
        "operations",
        "beginGetAccess",
        "endGetAccess",
    )
}


def _keyword_positions(lowered: list[str]) -> tuple[int, ...]:
    """Where the fixed words stand in an ARM path split on ``/`` (index 0 is empty)."""
    if len(lowered) < 2 or lowered[1] != "subscriptions":
        return ()
    if len(lowered) > 3 and lowered[3] == "resourcegroups":
        return (1, 3, 5, 6, 7, 9)  # .../resourceGroups/G/providers/NS/TYPE/NAME/ACTION
    if len(lowered) > 5 and lowered[5] == "locations":
        return (1, 3, 4, 5, 7)  # .../providers/NS/locations/L/operations/OP
    return (1, 3, 4, 5)  # .../providers/NS/TYPE


def canonical_path(path: str) -> str:
    """ARM paths match case-insensitively: rewrite the fixed words of a path to their
    canonical case (``resourcegroups`` → ``resourceGroups``) by position, leaving names as
    they are (a group may well be called ``disks``)."""
    parts = path.split("/")
    lowered = [p.lower() for p in parts]
    for i in _keyword_positions(lowered):
        if i < len(parts):
            parts[i] = _KEYWORDS.get(lowered[i], parts[i])
    return "/".join(parts)


_PLACEHOLDERS = {
    "subscriptions": "{subscriptionId}",
    "resourceGroups": "{resourceGroupName}",
    "disks": "{diskName}",
    "snapshots": "{snapshotName}",
    "locations": "{location}",
    "operations": "{operationId}",
}


def _arm_routes() -> frozenset[str]:
    sub = "/subscriptions/{subscriptionId}"
    group = sub + "/resourceGroups/{resourceGroupName}"
    compute = "/providers/Microsoft.Compute"
    routes = {sub + "/resourceGroups", group}
    for rtype, name in (("disks", "{diskName}"), ("snapshots", "{snapshotName}")):
        item = f"{group}{compute}/{rtype}/{name}"
        routes |= {f"{sub}{compute}/{rtype}", f"{group}{compute}/{rtype}", item}
        routes |= {f"{item}/beginGetAccess", f"{item}/endGetAccess"}
    routes.add(f"{sub}{compute}/locations/{{location}}/operations/{{operationId}}")
    return frozenset(routes)


_ARM_ROUTES = _arm_routes()
"""Every ARM route template the front door forwards or serves."""


def route_template(path: str) -> str:
    """An ARM path with its names replaced by placeholders (``/subscriptions/{subscriptionId}
    /resourceGroups/{resourceGroupName}/…``), or ``unmatched`` for a path no ARM route serves:
    one of a fixed few, so metrics labelled by it never grow with what callers send."""
    parts = canonical_path(path).split("/")
    keep = set(_keyword_positions([p.lower() for p in parts]))
    template = "/".join(
        part if i in keep or i == 0 else _PLACEHOLDERS.get(parts[i - 1], "{name}")
        for i, part in enumerate(parts)
    )
    return template if template in _ARM_ROUTES else "unmatched"


class ArmMiddleware:
    """Canonical paths, and request bodies refused past ``MAX_BODY_BYTES`` with a 413."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["path"] = canonical_path(scope["path"])
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await _send_too_large(send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES:
                raise arm.RequestTooLarge(f"request bodies are limited to {MAX_BODY_BYTES} bytes")
            return message

        await self.app(scope, limited, send)


async def _send_too_large(send: Send) -> None:
    response = error_response(
        arm.RequestTooLarge(f"request bodies are limited to {MAX_BODY_BYTES} bytes")
    )
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
    )
    await send({"type": "http.response.body", "body": response.body})
