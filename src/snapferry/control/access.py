"""Shared access signatures (SAS) for a disk's or snapshot's data: HMAC-signed, scoped to one
resource, bound to permissions, expiring, and revoked all at once by bumping the resource's
access *generation* (``endGetAccess``).

A SAS is the query string ``sr=b&sp=<perms>&se=<expiry>&sg=<generation>&sig=<hmac>``; the
signature covers the resource's ``uniqueId`` (so a resource deleted and made again under the
same name never honours an old SAS), permissions, expiry and generation, under the region's SAS
key. Each grant bumps the generation, so only the newest SAS of a resource is live. The data
plane verifies it; this module only mints and checks.
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

KEY_FILE = "sas-key"


class SasRefused(SnapferryError):
    """A SAS is missing, malformed, tampered, expired, revoked or lacks the permission."""

    code = "AuthenticationFailed"


def load_key(directory: Path) -> bytes:
    """The region's SAS key: 32 random bytes in ``directory/sas-key`` (0600), made once."""
    return read_or_create(directory / KEY_FILE, lambda: secrets.token_bytes(32))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Signer:
    """Mints and checks SAS query strings with one key."""

    key: bytes = field(repr=False)

    def _mac(self, resource_uid: str, perms: str, expiry: str, generation: int) -> str:
        message = f"{resource_uid}\n{perms}\n{expiry}\n{generation}".encode()
        digest = hmac.new(self.key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def sign(self, resource_uid: str, perms: str, expires_at: float, generation: int) -> str:
        """The query string of a SAS for the resource."""
        expiry = _iso(expires_at)
        sig = self._mac(resource_uid, perms, expiry, generation)
        return urlencode(
            {"sv": "2024-08-04", "sr": "b", "sp": perms, "se": expiry, "sg": generation, "sig": sig}
        )

    def check(
        self,
        resource_uid: str,
        query: dict[str, str],
        needed: str,
        generation: int,
        *,
        now: float | None = None,
    ) -> None:
        """Raise SasRefused unless the query is a valid, live SAS of this resource, of the
        current generation, granting the permission letter ``needed``."""
        try:
            perms, expiry, sig = query["sp"], query["se"], query["sig"]
            gen = int(query["sg"])
            expires = datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except (KeyError, ValueError):
            raise SasRefused("the request carries no valid shared access signature") from None
        good = self._mac(resource_uid, perms, expiry, gen)
        if not hmac.compare_digest(good.encode(), sig.encode("utf-8", "replace")):
            raise SasRefused("the shared access signature does not match this resource")
        if gen != generation:
            raise SasRefused("the shared access signature was revoked")
        if expires.timestamp() <= (time.time() if now is None else now):
            raise SasRefused("the shared access signature has expired")
        if needed not in perms:
            raise SasRefused(f"the shared access signature does not grant {needed!r} access")
