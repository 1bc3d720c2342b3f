"""MemoryStore: a dict behind a lock, for tests and throwaway regions."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from snapferry.errors import InvalidInput, ObjectNotFound
from snapferry.ids import validate_key


class MemoryStore:
    """A ChunkStore in process memory. Thread-safe; contents vanish with the object.

    Follows every ChunkStore contract, including key validation, so tests that pass against it
    say something about the real stores. Unlike LocalStore it can hold both ``a`` and ``a/b``.
    """

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._objects)} objects)"

    def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        """Store a copy of data under key unless present. True if written."""
        validate_key(key)
        copy = bytes(data)  # the caller may reuse its buffer once we return
        with self._lock:
            if key in self._objects:
                return False
            self._objects[key] = copy
        return True

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        """The object's bytes or ``[start, start+length)`` of them, clipped at the end."""
        validate_key(key)
        if start < 0 or (length is not None and length < 0):
            raise InvalidInput(f"invalid range start={start} length={length}: must not be negative")
        with self._lock:
            data = self._objects.get(key)
        if data is None:
            raise ObjectNotFound(f"no object {key!r}", key=key)
        if start == 0 and (length is None or length >= len(data)):
            return data  # bytes are immutable: no copy needed
        return data[start:] if length is None else data[start : start + length]

    def has(self, key: str) -> bool:
        """True if an object is stored under key."""
        validate_key(key)
        with self._lock:
            return key in self._objects

    def size(self, key: str) -> int:
        """Length of the object in bytes. Raises ``ObjectNotFound`` if absent."""
        validate_key(key)
        with self._lock:
            data = self._objects.get(key)
        if data is None:
            raise ObjectNotFound(f"no object {key!r}", key=key)
        return len(data)

    def delete(self, key: str) -> bool:
        """Remove the object. True if it existed."""
        validate_key(key)
        with self._lock:
            return self._objects.pop(key, None) is not None

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with prefix, ascending, as of the call."""
        with self._lock:
            matching = [k for k in self._objects if k.startswith(prefix)]
        return iter(sorted(matching))
