"""What a call to a snapferry cloud can fail with.

Every error is a ``ClientError`` carrying the server's ARM ``code`` and ``message`` (or one of
the client's own codes below) and the HTTP ``status`` (0 when no answer came). The classes also
derive from the ``snapferry.errors`` kind they belong to, so that an edge translating those kinds
(the CLI's exit codes) treats the caller's mistakes as such: 400 is ``InvalidInput``, 401 and 403
too (the caller lacks the right), 404 is ``NotFound``, 409 is ``Conflict``. No message carries a
token: messages hold the server's text, URLs and names only.
"""

from __future__ import annotations

from snapferry.errors import Conflict, InvalidInput, NotFound, SnapferryError


class ClientError(SnapferryError):
    """A request to the cloud failed. ``code`` is the server's ARM error code when it sent one."""

    code = "RequestFailed"

    def __init__(
        self, message: str, *, code: str | None = None, status: int = 0, **details: object
    ) -> None:
        super().__init__(message, status=status, **details)
        if code:
            self.code = code
        self.status = status


class NotConfigured(ClientError, InvalidInput):
    """No cloud to talk to: no endpoint, token or subscription was given or found."""

    code = "NoCloud"


class BadRequest(ClientError, InvalidInput):
    """The server refused the request as malformed or out of range (HTTP 400, 413, 422)."""


class AccessDenied(ClientError, InvalidInput):
    """The token was refused (HTTP 401) or does not allow the action (HTTP 403)."""


class ResourceMissing(ClientError, NotFound):
    """The resource, its resource group or the operation does not exist (HTTP 404)."""


class ResourceConflict(ClientError, Conflict):
    """The resource's current state forbids the request (HTTP 409)."""


class ServerError(ClientError):
    """The cloud failed or is overloaded (HTTP 429 or 5xx); the request may be repeated."""

    retryable = True


class Unreachable(ClientError):
    """No HTTP answer: connection refused, timed out, or TLS verification failed."""

    code = "ServiceUnreachable"
    retryable = True


class OperationFailed(ClientError):
    """A long-running operation ended Failed; code and message are the operation's error."""

    code = "OperationFailed"


class OperationTimeout(ClientError):
    """A long-running operation did not finish in time. It may still finish later."""

    code = "OperationTimedOut"
    retryable = True


def for_status(status: int) -> type[ClientError]:
    """The error class an HTTP error status maps to."""
    if status in (400, 413, 422):
        return BadRequest
    if status in (401, 403):
        return AccessDenied
    if status == 404:
        return ResourceMissing
    if status in (409, 412):
        return ResourceConflict
    if status == 429 or status >= 500:
        return ServerError
    return ClientError
