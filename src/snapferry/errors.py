"""The error tree. Every error carries a stable ``code`` and says whether a retry may succeed.

Edges translate these (the ARM envelope in the API, exit codes and messages in the CLI); nothing
inside snapferry raises a bare ``KeyError`` or ``ValueError`` across a layer boundary.
"""

from __future__ import annotations


class SnapferryError(Exception):
    """Base of every error snapferry raises on purpose."""

    code = "InternalError"
    retryable = False

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form: code, message and details."""
        return {"code": self.code, "message": self.message, **self.details}


class InvalidInput(SnapferryError):
    """The caller asked for something malformed or out of range; nothing was changed."""

    code = "InvalidParameter"


class NotFound(SnapferryError):
    """A disk, snapshot or object that does not exist (or no longer does)."""

    code = "NotFound"


class Conflict(SnapferryError):
    """The request is well formed but the current state forbids it; nothing was changed."""

    code = "Conflict"


class NotReady(SnapferryError):
    """The resource is still being built (for example a snapshot being sealed). Retry later."""

    code = "NotReady"
    retryable = True


class RegionBusy(SnapferryError):
    """Another process holds the region's data directory."""

    code = "RegionBusy"
    retryable = True


class IntegrityError(SnapferryError):
    """Stored bytes do not match their id: corrupt or missing data. Never returned as wrong bytes."""

    code = "IntegrityError"


class StoreError(SnapferryError):
    """A chunk store failed to do what was asked."""

    code = "StoreError"


class TransientStoreError(StoreError):
    """A store call failed in a way that may succeed when repeated (I/O hiccup, timeout)."""

    code = "StoreUnavailable"
    retryable = True


class ZoneUnavailable(TransientStoreError):
    """Data kept in one zone only (locally redundant) cannot be read: that zone's store is lost
    or unreachable. Never answered with other bytes; works again when the zone returns."""

    code = "ZoneUnavailable"


class ObjectNotFound(StoreError):
    """The store holds no object under the key."""

    code = "ObjectNotFound"


class SourceNotFound(NotFound):
    """The source of a copy no longer exists in its region (deleted before the copy finished)."""

    code = "CopySourceNotFound"


class PeerUnavailable(SnapferryError):
    """Another region could not be reached, timed out, or answered with something unusable
    (a corrupt body included). Retrying later may succeed."""

    code = "PeerUnavailable"
    retryable = True


class StorageFault(SnapferryError):
    """The region's own storage — its data directory, chunk store or database — refused to keep
    something (``snapferry.faults`` names what an OS or database error means). Nothing the
    refused request asked for was kept."""

    retryable = True
    retry_after = 30
    """Seconds a client should wait before trying again."""


class StorageFull(StorageFault):
    """No room is left, or only the reserve that deletions, commits and recovery keep for
    themselves. Deleting disks or snapshots frees space."""

    code = "StorageFull"


class StorageReadOnly(StorageFault):
    """The region's storage turned read-only (the filesystem remounted so after an error):
    reads go on; writes resume once it is writable again."""

    code = "StorageReadOnly"


class StorageIOError(StorageFault):
    """The region's storage failed to read or write (an I/O error from the device)."""

    code = "StorageIOError"
    retry_after = 5
