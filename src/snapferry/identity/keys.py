"""The files a registry keeps beside its database: the token signing key and the tenant id.

Both are created once and never replaced: replacing the key would invalidate every token issued,
replacing the tenant would orphan every principal. Creation is atomic and race-safe: the bytes go
to a temporary file that is fsynced and then hard-linked into place. ``os.link`` (unlike
``os.rename``) refuses to replace an existing name, so when two processes race, the first one's
file stays and both go on with it.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from snapferry.errors import InvalidInput
from snapferry.files import write_if_absent

SIGNING_KEY_FILE = "token-signing-key.pem"
TENANT_FILE = "tenant"
RSA_KEY_BITS = 2048


def load_or_create_signing_key(key_dir: Path) -> rsa.RSAPrivateKey:
    """The RSA key in ``key_dir/token-signing-key.pem``, first creating it (mode 0600) if missing.

    Raises InvalidInput if the file exists but holds no unencrypted RSA private key.
    """
    path = key_dir / SIGNING_KEY_FILE
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_if_absent(path, pem, mode=0o600)
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        loaded = None
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise InvalidInput(f"{path} does not hold an unencrypted RSA private key")
    return loaded


def load_or_create_tenant(key_dir: Path) -> str:
    """The tenant id in ``key_dir/tenant``, first creating a random UUID there if missing.

    Raises InvalidInput if the file exists but does not hold a UUID.
    """
    path = key_dir / TENANT_FILE
    if not path.exists():
        write_if_absent(path, f"{uuid.uuid4()}\n".encode(), mode=0o644)
    return canonical_tenant(path.read_text(encoding="ascii", errors="replace").strip())


def canonical_tenant(tenant: str) -> str:
    """tenant as a lowercase hyphenated UUID, or InvalidInput if it is not a UUID."""
    try:
        return str(uuid.UUID(tenant))
    except (ValueError, TypeError, AttributeError):
        raise InvalidInput(f"tenant id {tenant!r} is not a UUID") from None
