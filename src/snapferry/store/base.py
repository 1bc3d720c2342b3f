"""The ChunkStore protocol: bytes by key, nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable


@runtime_checkable
class ChunkStore(Protocol):
    """Bytes by key. Keys are relative, lowercase, '/'-separated; no '..' (see ``ids.validate_key``).

    Objects are immutable once written: there is no overwrite, only ``put_if_absent`` and
    ``delete``. Every method is safe to repeat after a failure (retry-safe). Invalid keys raise
    ``InvalidInput`` before anything is touched; store failures raise ``StoreError`` subclasses
    (``TransientStoreError`` when a retry may succeed).
    """

    def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        """Store data under key unless present. True if written, False if the key already existed
        (its bytes are left unchanged). The object is durable when this returns. Safe to repeat."""
        ...

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        """The object's bytes, or the range ``[start, start+length)`` of them (clipped at the end
        of the object). Raises ``ObjectNotFound`` if absent, ``InvalidInput`` for a negative range."""
        ...

    def has(self, key: str) -> bool:
        """True if an object is stored under key."""
        ...

    def size(self, key: str) -> int:
        """Length of the object in bytes. Raises ``ObjectNotFound`` if absent."""
        ...

    def delete(self, key: str) -> bool:
        """Remove the object. True if it existed; deleting a missing key is not an error."""
        ...

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with prefix, in ascending order. A key written or deleted while the
        iteration runs may or may not appear."""
        ...
