"""ARM errors: one class per wire error code, each with the HTTP status it travels with.

Engine errors (``snapferry.errors``) keep their own classes; the API maps those by kind.
"""

from __future__ import annotations

from snapferry.errors import Conflict, InvalidInput, NotFound, SnapferryError


class ArmError(SnapferryError):
    """An error with a fixed ARM code and HTTP status."""

    status = 400


class BadRequest(InvalidInput):
    """The request is malformed: not JSON, wrong shape, wrong types."""

    code = "InvalidRequestContent"
    status = 400


class InvalidParameter(InvalidInput):
    """A value is out of range or unsupported."""

    code = "InvalidParameter"
    status = 400


class InvalidResourceName(InvalidInput):
    code = "InvalidResourceName"
    status = 400


class MissingApiVersion(InvalidInput):
    code = "MissingApiVersionParameter"
    status = 400


class InvalidApiVersion(InvalidInput):
    code = "InvalidApiVersionParameter"
    status = 400


class LocationNotAvailable(InvalidInput):
    code = "LocationNotAvailableForResourceType"
    status = 400


class GroupLocationNotAvailable(InvalidInput):
    code = "LocationNotAvailableForResourceGroup"
    status = 400


class RequestTooLarge(InvalidInput):
    code = "RequestEntityTooLarge"
    status = 413


class ResourceNotFound(NotFound):
    code = "ResourceNotFound"
    status = 404


class ResourceGroupNotFound(NotFound):
    code = "ResourceGroupNotFound"
    status = 404


class OperationNotFound(NotFound):
    code = "OperationNotFound"
    status = 404


class AnotherOperationInProgress(Conflict):
    code = "AnotherOperationInProgress"
    status = 409


class OperationNotAllowed(Conflict):
    code = "OperationNotAllowed"
    status = 409


class PropertyChangeNotAllowed(Conflict):
    code = "PropertyChangeNotAllowed"
    status = 409


class InvalidResourceLocation(Conflict):
    code = "InvalidResourceLocation"
    status = 409


class ResourceGroupNotEmpty(Conflict):
    code = "ResourceGroupNotEmpty"
    status = 409


class Unauthenticated(ArmError):
    code = "AuthenticationFailed"
    status = 401


class Forbidden(ArmError):
    code = "AuthorizationFailed"
    status = 403


class LinkedAuthorizationFailed(ArmError):
    code = "LinkedAuthorizationFailed"
    status = 403


class RegionUnavailable(ArmError):
    code = "RegionUnavailable"
    status = 503
    retryable = True
