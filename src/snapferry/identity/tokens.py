"""Access tokens: RS256 JWTs shaped like the ones Microsoft Entra ID issues for ARM.

This module knows the token format and nothing of the registry: ``TokenSigner.verify`` proves a
token was signed by our key, is meant for ARM, and is within its lifetime. Whether the principal
it names still exists and is enabled is the registry's question.

Tokens are secrets. Nothing here logs them, puts them in an error message, or chains an exception
whose text could quote part of one.
"""

from __future__ import annotations

import base64
import hashlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from snapferry.identity.principals import AuthenticationFailed

AUDIENCE = "https://management.azure.com/"
"""The ``aud`` of every token: the resource the Azure CLI and SDKs request tokens for."""

ALGORITHM = "RS256"
LEEWAY_SECONDS = 60.0
"""Clock skew tolerated when checking ``nbf`` and ``exp``."""

MAX_TOKEN_LENGTH = 16 * 1024
_REQUIRED = ["iss", "aud", "tid", "oid", "sub", "iat", "nbf", "exp"]

VERIFIED_CACHE = 4096
"""How many verified token payloads a signer remembers (oldest forgotten first)."""


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token asserts: the tenant and principal (object id) it speaks for."""

    tenant: str
    object_id: str
    expires_at: float


class TokenSigner:
    """Issues and verifies access tokens with one RSA key for one issuer and tenant.

    ``clock`` returns the current Unix time; it decides ``iat``/``nbf``/``exp`` when issuing and
    expiry when verifying.
    """

    def __init__(
        self,
        key: rsa.RSAPrivateKey,
        *,
        issuer: str,
        tenant: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._public_key = key.public_key()
        self._verified: dict[str, dict[str, Any]] = {}
        self._verified_lock = threading.Lock()
        self.issuer = issuer
        self.tenant = tenant
        self._clock = clock
        self.key_id = _key_id(self._public_key)

    def __repr__(self) -> str:
        return f"TokenSigner(issuer={self.issuer!r}, tenant={self.tenant!r}, kid={self.key_id!r})"

    def issue(self, *, object_id: str, name: str, lifetime_seconds: int) -> tuple[str, float]:
        """A signed token for the principal object_id, and the Unix time it expires at."""
        now = int(self._clock())
        expires = now + lifetime_seconds
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "tid": self.tenant,
            "oid": object_id,
            "sub": object_id,
            "iat": now,
            "nbf": now,
            "exp": expires,
            "name": name,
        }
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.key_id})
        return token, float(expires)

    def verify(self, token: str) -> TokenClaims:
        """The claims of token if our key signed it for ARM, our issuer and tenant, and it is
        within its lifetime (``LEEWAY_SECONDS`` of skew allowed). Else AuthenticationFailed."""
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
            raise AuthenticationFailed("The access token is malformed.")
        payload = self._decode(token)
        now = self._clock()
        if _number(payload["exp"]) <= now - LEEWAY_SECONDS:
            raise AuthenticationFailed("The access token has expired.")
        if _number(payload["nbf"]) > now + LEEWAY_SECONDS:
            raise AuthenticationFailed("The access token is not yet valid.")
        oid, tid = payload["oid"], payload["tid"]
        if not isinstance(oid, str) or payload["sub"] != oid or tid != self.tenant:
            raise AuthenticationFailed("The access token was issued for another principal.")
        return TokenClaims(tenant=tid, object_id=oid, expires_at=float(payload["exp"]))

    def _decode(self, token: str) -> dict[str, Any]:
        # A token's signature, audience and issuer never change, so the payload of a token that
        # passed is remembered (bounded); lifetime and principal are checked on every call.
        known = self._verified.get(token)
        if known is None:
            known = self._verify_signature(token)
            with self._verified_lock:
                if len(self._verified) >= VERIFIED_CACHE:
                    self._verified.pop(next(iter(self._verified)))
                self._verified[token] = known
        return known

    def _verify_signature(self, token: str) -> dict[str, Any]:
        # PyJWT's messages may quote decoded parts of the token, so each failure is mapped to a
        # fixed message and the original exception is dropped (``from None``).
        failure: str
        try:
            return jwt.decode(
                token,
                self._public_key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=self.issuer,
                # lifetime is checked against our own clock in verify()
                options={
                    "require": _REQUIRED,
                    "strict_aud": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError:
            failure = "The access token's signature is invalid."
        except jwt.InvalidAudienceError:
            failure = f"The access token is not for the audience {AUDIENCE}."
        except jwt.InvalidIssuerError:
            failure = "The access token is from another issuer."
        except jwt.MissingRequiredClaimError:
            failure = "The access token lacks a required claim."
        except jwt.InvalidAlgorithmError:
            failure = f"The access token is not signed with {ALGORITHM}."
        except (jwt.PyJWTError, ValueError, TypeError):
            failure = "The access token is malformed."
        raise AuthenticationFailed(failure) from None


def _number(value: object) -> float:
    """A NumericDate claim as a float; AuthenticationFailed if it is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthenticationFailed("The access token is malformed.")
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        number = math.inf
    if not math.isfinite(number):
        raise AuthenticationFailed("The access token is malformed.")
    return number


def _key_id(public_key: rsa.RSAPublicKey) -> str:
    """A short stable id for the key: base64url of the first 16 bytes of SHA-256 of its SPKI."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.sha256(der).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
