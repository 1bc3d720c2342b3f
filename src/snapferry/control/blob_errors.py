"""Errors of the page-blob data plane, with Azure Storage's codes and statuses.

The HTTP edge turns each into ``x-ms-error-code`` plus an XML ``<Error>`` body; ``status`` is the
HTTP status. SAS refusals (``control.access``) are 403s of the same shape.
"""

from __future__ import annotations

from snapferry.errors import SnapferryError


class BlobError(SnapferryError):
    """Base of the data plane's errors: ``code`` is Azure Storage's, ``status`` the HTTP one."""

    code = "InternalError"
    status = 500


def _error(name: str, code: str, status: int, doc: str) -> type[BlobError]:
    return type(name, (BlobError,), {"code": code, "status": status, "__doc__": doc})


InvalidQueryParameterValue = _error(
    "InvalidQueryParameterValue", "InvalidQueryParameterValue", 400, "A query value is invalid."
)
InvalidHeaderValue = _error(
    "InvalidHeaderValue", "InvalidHeaderValue", 400, "A header's value is invalid."
)
MissingRequiredHeader = _error(
    "MissingRequiredHeader", "MissingRequiredHeader", 400, "A required header is absent."
)
Md5Mismatch = _error("Md5Mismatch", "Md5Mismatch", 400, "The body does not match Content-MD5.")
PreviousSnapshotCannotBeNewer = _error(
    "PreviousSnapshotCannotBeNewer",
    "PreviousSnapshotCannotBeNewer",
    400,
    "A diff's previous snapshot is newer than its target.",
)
BlobNotFound = _error("BlobNotFound", "BlobNotFound", 404, "No such blob.")
PreviousSnapshotNotFound = _error(
    "PreviousSnapshotNotFound",
    "PreviousSnapshotNotFound",
    409,
    "A diff's previous snapshot does not exist or its SAS is not valid.",
)
PreviousSnapshotOperationNotSupported = _error(
    "PreviousSnapshotOperationNotSupported",
    "PreviousSnapshotOperationNotSupported",
    409,
    "No diff joins the two: another disk's snapshot, or a target that is not a snapshot.",
)
OperationNotAllowed = _error(
    "OperationNotAllowed",
    "OperationNotAllowed",
    409,
    "The resource's state forbids the request (a snapshot still sealing).",
)
MissingContentLength = _error(
    "MissingContentLengthHeader", "MissingContentLengthHeader", 411, "No Content-Length."
)
ConditionNotMet = _error(
    "ConditionNotMet", "ConditionNotMet", 412, "A conditional header's condition failed."
)
SequenceNumberConditionNotMet = _error(
    "SequenceNumberConditionNotMet",
    "SequenceNumberConditionNotMet",
    412,
    "An x-ms-if-sequence-number condition failed.",
)
LeaseNotPresent = _error(
    "LeaseNotPresentWithBlobOperation",
    "LeaseNotPresentWithBlobOperation",
    412,
    "A lease id was given but the blob has no lease.",
)
RequestBodyTooLarge = _error(
    "RequestBodyTooLarge", "RequestBodyTooLarge", 413, "A Put Page body over 4 MiB."
)
InvalidRange = _error(
    "InvalidRange", "InvalidRange", 416, "A read range that starts past the end of the blob."
)
InvalidPageRange = _error(
    "InvalidPageRange",
    "InvalidPageRange",
    416,
    "A page range that is not 512-aligned or runs past the end of the blob.",
)
NotImplementedHere = _error(
    "NotImplementedHere", "APINotImplemented", 501, "An operation snapferry does not support."
)
ServerBusy = _error("ServerBusy", "ServerBusy", 503, "The region is briefly unable to answer.")
ZoneUnavailable = _error(
    "ZoneUnavailable",
    "ZoneUnavailable",
    503,
    "Data kept in one zone alone (locally redundant) while that zone is unavailable.",
)
