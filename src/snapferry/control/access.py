"""Shared access signatures (SAS) for a disk's or snapshot's data: HMAC-signed, scoped to one
resource, bound to permissions, expiring, and revoked all at once (``endGetAccess``).

A SAS uses only the standard parameter names (azure-storage-blob's ``from_blob_url`` drops any
other): ``sv=2018-03-28&sr=b&si=<grant>&sp=<perms>&se=<expiry>&sig=<hmac>``. ``si`` names the
grant, as Azure's managed-disk SAS names a stored access policy: each ``beginGetAccess`` makes a
new grant id and ``endGetAccess`` forgets it, so only the newest SAS of a resource is live. The
signature covers the resource's ``uniqueId`` (a resource deleted and made again under the same
name never honours an old SAS), the grant, permissions and expiry, under the region's SAS key.
The data plane verifies it; this module only mints and checks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from snapferry.errors import SnapferryError
from snapferry.files import read_or_create

KEY_HEADER = "x-snapferry-key"
"""Carries the key a region expects from its front door (and from maintenance asked of it)."""
KEY_FILE = "sas-key"
SAS_VERSION = "2018-03-28"
"""The ``sv`` of a managed-disk access SAS."""
BLOB_NAME = "abcd"
"""The blob name of every managed-disk access SAS URL (as Azure's)."""


def sas_path(region: str, engine_id: str) -> str:
    """The path of a resource's data: ``/<account>/<container>/abcd``, which azure-storage-blob
    splits into account (the region), container (the engine id) and blob on a loopback host."""
    return f"/{region}/{engine_id}/{BLOB_NAME}"


class SasRefused(SnapferryError):
    """A SAS is missing, malformed, tampered, expired or revoked (403)."""

    code = "AuthenticationFailed"
    status = 403


class SasPermissionMismatch(SasRefused):
    """A valid SAS that does not grant the permission the request needs (403)."""

    code = "AuthorizationPermissionMismatch"


def load_key(directory: Path) -> bytes:
    """The region's SAS key: 32 random bytes in ``directory/sas-key`` (0600), made once."""
    return read_or_create(directory / KEY_FILE, lambda: secrets.token_bytes(32))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Signer:
    """Mints and checks SAS query strings with one key."""

    key: bytes = field(repr=False)

    def _mac(self, resource_uid: str, perms: str, expiry: str, grant: str) -> str:
        message = f"{resource_uid}\n{perms}\n{expiry}\n{grant}".encode()
        digest = hmac.new(self.key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def sign(self, resource_uid: str, perms: str, expires_at: float, grant: str) -> str:
        """The query string of a SAS for the resource under the grant."""
        expiry = _iso(expires_at)
        sig = self._mac(resource_uid, perms, expiry, grant)
        return urlencode(
            {"sv": SAS_VERSION, "sr": "b", "si": grant, "sp": perms, "se": expiry, "sig": sig}
        )

    def check(
        self,
        resource_uid: str,
        query: dict[str, str],
        needed: str,
        grant: str | None,
        *,
        now: float | None = None,
    ) -> None:
        """Raise SasRefused unless the query is a valid, live SAS of this resource under its
        current grant (None: no grant is live), granting the permission letter ``needed``."""
        try:
            perms, expiry, sig, given = query["sp"], query["se"], query["sig"], query["si"]
            expires = datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except (KeyError, ValueError):
            raise SasRefused("the request carries no valid shared access signature") from None
        good = self._mac(resource_uid, perms, expiry, given)
        if not hmac.compare_digest(good.encode(), sig.encode("utf-8", "replace")):
            raise SasRefused("the shared access signature does not match this resource")
        if grant is None or not hmac.compare_digest(
            given.encode("utf-8", "replace"), grant.encode()
        ):
            raise SasRefused("the shared access signature was revoked")
        if expires.timestamp() <= (time.time() if now is None else now):
            raise SasRefused("the shared access signature has expired")
        if needed not in perms:
            raise SasPermissionMismatch(
                f"the shared access signature does not grant {needed!r} access"
            )
