"""HTTP to one cloud: the bearer token, ARM errors, paging and long-running operations.

Links the server hands back (``nextLink``, ``Azure-AsyncOperation``, ``Location``) are followed
only when they point at the cloud's own endpoint (same scheme, host and port), so the token is
never sent anywhere else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from snapferry.client.config import Cloud
from snapferry.client.errors import (
    ClientError,
    OperationFailed,
    OperationTimeout,
    ServerError,
    Unreachable,
    for_status,
)

API_VERSION = "2024-03-02"
"""The Microsoft.Compute api-version sent on every call (the one azure-mgmt-compute 39 uses)."""

USER_AGENT = "snapferry-client/0.1"
FIRST_POLL = 0.1
"""Seconds before the first poll of an operation; later polls wait what Retry-After asks."""
MAX_POLL = 30.0
POLL_RETRIES = 3
"""Consecutive failed polls (5xx, no answer) tolerated before waiting gives up."""
TERMINAL = {"succeeded": "Succeeded", "failed": "Failed", "canceled": "Canceled"}

ProgressFn = Callable[[str, float], None]
"""Called while waiting for an operation, after each poll: (what is being done, seconds so far)."""


class Transport:
    """Requests to one cloud. Not thread-safe (one ``requests.Session``)."""

    def __init__(
        self,
        cloud: Cloud,
        *,
        session: requests.Session | None = None,
        request_timeout: float = 60.0,
        operation_timeout: float = 600.0,
        progress: ProgressFn | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cloud = cloud
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {cloud.token}"
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        self.request_timeout = request_timeout
        self.operation_timeout = operation_timeout
        self.progress = progress
        self.sleep = sleep
        self.clock = clock
        self._origin = _origin(cloud.endpoint)

    def close(self) -> None:
        self.session.close()

    # --- one request ---------------------------------------------------------------------------
    def call(
        self, method: str, where: str, body: Mapping[str, Any] | None = None
    ) -> requests.Response:
        """Send one request and return a 2xx response; anything else raises a ClientError.

        where is a path below the endpoint (``api-version`` is added) or an absolute link the
        server sent (used as given, after the same-origin check)."""
        url, params = self._target(where)
        try:
            resp = self.session.request(
                method,
                url,
                params=params,
                json=body,
                timeout=(min(10.0, self.request_timeout), self.request_timeout),
                verify=self.cloud.ca or True,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError:
            raise Unreachable(
                f"TLS verification of {self.cloud.endpoint} failed: check the endpoint and the "
                "CA (cloud.json's ca)"
            ) from None
        except requests.exceptions.Timeout:
            raise Unreachable(
                f"snapferry at {self.cloud.endpoint} did not answer within "
                f"{self.request_timeout:g} s"
            ) from None
        except requests.exceptions.ConnectionError:
            raise Unreachable(
                f"cannot reach snapferry at {self.cloud.endpoint} (from {self.cloud.source}): "
                "is `snapferry up` running?"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise ClientError(
                f"request to {self.cloud.endpoint} failed: {type(exc).__name__}"
            ) from None
        if resp.status_code >= 300:
            raise _error(resp, method)
        return resp

    def json(
        self, method: str, where: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """call() and its JSON object body."""
        return _json_object(self.call(method, where, body))

    def _target(self, where: str) -> tuple[str, dict[str, str] | None]:
        if where.startswith("/"):
            return self.cloud.endpoint + where, {"api-version": API_VERSION}
        if _origin(where) != self._origin:
            raise ClientError(
                f"the server sent a link to {_origin(where)[1] or where[:100]}, not to "
                f"{self.cloud.endpoint}; not following it",
                code="UnexpectedLink",
            )
        return where, None

    # --- lists ---------------------------------------------------------------------------------
    def pages(self, path: str) -> Iterator[dict[str, Any]]:
        """Every item of an ARM list, following ``nextLink`` until there is none."""
        where: str | None = path
        seen: set[str] = set()
        while where:
            doc = self.json("GET", where)
            items = doc.get("value") or []
            if not isinstance(items, list):
                raise ClientError(f"the list at {path} has no 'value' array", code="BadResponse")
            yield from items
            where = doc.get("nextLink") or None
            if where in seen:
                raise ClientError(f"the list at {path} repeats a page", code="BadResponse")
            if where:
                seen.add(where)

    # --- long-running operations ---------------------------------------------------------------
    def wait(self, started: requests.Response, what: str) -> None:
        """Wait until the operation started answered by started is over; return if it
        Succeeded. Raises OperationFailed (with the operation's error code and message) if it
        Failed or was Canceled, OperationTimeout after ``operation_timeout`` seconds.

        Polls ``Azure-AsyncOperation`` (else ``Location`` until it stops answering 202), the
        first time after FIRST_POLL seconds, then as ``Retry-After`` asks. A response without
        either header is a finished operation."""
        status_url = started.headers.get("Azure-AsyncOperation")
        monitor = started.headers.get("Location")
        if status_url is None and (monitor is None or started.status_code != 202):
            return
        url, is_status = (status_url, True) if status_url else (str(monitor), False)
        begun = self.clock()
        delay = FIRST_POLL
        failures = 0
        while True:
            self.sleep(delay)
            reply: requests.Response | None = None
            try:
                reply = self.call("GET", url)
                failures = 0
            except (ServerError, Unreachable):
                failures += 1
                if failures > POLL_RETRIES:
                    raise
            if reply is not None and _settled(reply, is_status, what):
                return
            elapsed = self.clock() - begun
            if elapsed > self.operation_timeout:
                raise OperationTimeout(
                    f"{what}: still in progress after {self.operation_timeout:g} s; it may "
                    "finish later"
                )
            if self.progress is not None:
                self.progress(what, elapsed)
            delay = _retry_after(reply.headers if reply is not None else {})


def _settled(reply: requests.Response, is_status: bool, what: str) -> bool:
    """True if the operation succeeded, False if still running; raises if it failed."""
    if not is_status:
        return reply.status_code != 202
    doc = _json_object(reply)
    status = TERMINAL.get(str(doc.get("status", "")).lower())
    if status is None:
        return False
    if status == "Succeeded":
        return True
    error = doc.get("error")
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or f"Operation{status}")
    message = str(error.get("message") or f"the operation ended {status}")
    raise OperationFailed(f"{what} failed: {message}", code=code, status=reply.status_code)


def _retry_after(headers: Mapping[str, str]) -> float:
    try:
        seconds = float(headers.get("Retry-After", "1"))
    except ValueError:
        seconds = 1.0
    return min(max(seconds, FIRST_POLL), MAX_POLL)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def _json_object(resp: requests.Response) -> dict[str, Any]:
    try:
        doc = resp.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise ClientError(
            f"{resp.request.method} {urlsplit(resp.url).path[:200]} answered HTTP "
            f"{resp.status_code} without a JSON object",
            code="BadResponse",
            status=resp.status_code,
        )
    return doc


def _error(resp: requests.Response, method: str) -> ClientError:
    """The ClientError for an HTTP error answer: the ARM envelope's code and message when the
    body has one, else the status line."""
    try:
        doc = resp.json()
    except ValueError:
        doc = None
    error = doc.get("error") if isinstance(doc, dict) else None
    details: dict[str, object] = {}
    request_id = resp.headers.get("x-ms-request-id")
    if request_id:
        details["requestId"] = request_id[:100]  # what the server's log names the call by
    if isinstance(error, dict) and error.get("code"):
        code = str(error["code"])[:100]
        message = str(error.get("message") or code)[:2000]
        if error.get("target"):
            details["target"] = str(error["target"])[:300]
    else:
        code = f"Http{resp.status_code}"
        path = urlsplit(resp.url).path[:200]
        message = f"{method} {path} answered HTTP {resp.status_code} {resp.reason or ''}".strip()
    return for_status(resp.status_code)(message, code=code, status=resp.status_code, **details)
