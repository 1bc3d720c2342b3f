"""Wrapper stores: cross-cutting behaviour composed around any ChunkStore.

Each wrapper is itself a ChunkStore and changes only what its docstring says, so they stack:
``CountingStore(FailingStore(LocalStore(root), FaultSchedule(nth={2})))``.

Operation names, used by schedules and counters, are the ChunkStore method names:
``put_if_absent``, ``get``, ``has``, ``size``, ``delete`` and ``keys`` (whose "key" is the prefix).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from typing import TypeVar

from snapferry.errors import InvalidInput, TransientStoreError
from snapferry.store.base import ChunkStore

T = TypeVar("T")
OPS = frozenset({"put_if_absent", "get", "has", "size", "delete", "keys"})


class FaultSchedule:
    """Decides, call by call, whether a wrapper injects its fault. Thread-safe.

    Calls are counted per operation, from 1, and only for operations in ``ops`` (all if None).
    A counted call is faulted if its number is in ``nth``, or is a multiple of ``every``, or
    ``when(op, key)`` is true; at most ``limit`` faults fire in total (no limit if None). With no
    rule given, nothing is ever faulted.
    """

    def __init__(
        self,
        *,
        ops: Collection[str] | None = None,
        nth: Collection[int] = (),
        every: int | None = None,
        when: Callable[[str, str], bool] | None = None,
        limit: int | None = None,
    ) -> None:
        unknown = set(ops or ()) - OPS
        if unknown:
            raise InvalidInput(f"unknown store operations {sorted(unknown)}; known: {sorted(OPS)}")
        if every is not None and every < 1:
            raise InvalidInput("every must be at least 1")
        self.ops = frozenset(ops) if ops is not None else OPS
        self.nth = frozenset(nth)
        self.every = every
        self.when = when
        self.limit = limit
        self.calls: Counter[str] = Counter()
        self.fired: list[tuple[str, str, int]] = []
        """Every fault injected so far, as (op, key, call number)."""
        self._lock = threading.Lock()

    def should_fault(self, op: str, key: str) -> bool:
        """Count this call and say whether to fault it."""
        if op not in self.ops:
            return False
        with self._lock:
            self.calls[op] += 1
            n = self.calls[op]
            if self.limit is not None and len(self.fired) >= self.limit:
                return False
            hit = (
                n in self.nth
                or (self.every is not None and n % self.every == 0)
                or (self.when is not None and self.when(op, key))
            )
            if hit:
                self.fired.append((op, key, n))
            return hit


class StoreWrapper:
    """Delegates every call to ``inner`` through ``_call``; subclasses override what they change."""

    def __init__(self, inner: ChunkStore) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    def _call(self, op: str, key: str, call: Callable[[], T]) -> T:
        return call()

    def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        return self._call("put_if_absent", key, lambda: self.inner.put_if_absent(key, data))

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        return self._call("get", key, lambda: self.inner.get(key, start, length))

    def has(self, key: str) -> bool:
        return self._call("has", key, lambda: self.inner.has(key))

    def size(self, key: str) -> int:
        return self._call("size", key, lambda: self.inner.size(key))

    def delete(self, key: str) -> bool:
        return self._call("delete", key, lambda: self.inner.delete(key))

    def keys(self, prefix: str = "") -> Iterator[str]:
        return self._call("keys", prefix, lambda: self.inner.keys(prefix))


class FailingStore(StoreWrapper):
    """Raises ``exc(message)`` on scheduled calls, else delegates unchanged.

    By default the fault is raised before delegating, so nothing happened. With ``after=True`` the
    call is delegated first and then fails: the work is done but the caller never hears of it, as
    when a response is lost. That is what proves a caller's retries are safe.
    """

    def __init__(
        self,
        inner: ChunkStore,
        schedule: FaultSchedule,
        exc: Callable[[str], Exception] = TransientStoreError,
        *,
        after: bool = False,
    ) -> None:
        super().__init__(inner)
        self.schedule = schedule
        self.exc = exc
        self.after = after

    def _call(self, op: str, key: str, call: Callable[[], T]) -> T:
        if not self.schedule.should_fault(op, key):
            return call()
        if self.after:
            call()
        raise self.exc(f"injected fault: {op} {key!r}")


class DelayingStore(StoreWrapper):
    """Sleeps ``seconds`` before delegating each call to an operation in ``ops`` (all if None)."""

    def __init__(
        self,
        inner: ChunkStore,
        seconds: float,
        ops: Collection[str] | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(inner)
        self.seconds = seconds
        self.ops = frozenset(ops) if ops is not None else OPS
        self._sleep = sleep

    def _call(self, op: str, key: str, call: Callable[[], T]) -> T:
        if op in self.ops:
            self._sleep(self.seconds)
        return call()


class CorruptingStore(StoreWrapper):
    """Flips one byte (the middle one, all bits) of data returned by scheduled ``get`` calls.

    With ``puts=True`` it also corrupts data on its way in on scheduled ``put_if_absent`` calls
    (the caller's buffer is left alone). Empty data has no byte to flip and passes unchanged.
    Other operations are delegated untouched and never consult the schedule.
    """

    def __init__(self, inner: ChunkStore, schedule: FaultSchedule, *, puts: bool = False) -> None:
        super().__init__(inner)
        self.schedule = schedule
        self.puts = puts

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        data = self.inner.get(key, start, length)
        return flip_byte(data) if self.schedule.should_fault("get", key) else data

    def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        if self.puts and self.schedule.should_fault("put_if_absent", key):
            data = flip_byte(bytes(data))
        return self.inner.put_if_absent(key, data)


class CountingStore(StoreWrapper):
    """Counts calls per operation in ``calls`` and bytes moved per operation in ``nbytes``.

    ``nbytes["get"]`` is the bytes returned; ``nbytes["put_if_absent"]`` the bytes offered, whether
    or not they were written. Failed calls count as calls, not as bytes. Thread-safe.
    """

    def __init__(self, inner: ChunkStore) -> None:
        super().__init__(inner)
        self.calls: Counter[str] = Counter()
        self.nbytes: Counter[str] = Counter()
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self.calls.clear()
            self.nbytes.clear()

    def _call(self, op: str, key: str, call: Callable[[], T]) -> T:
        with self._lock:
            self.calls[op] += 1
        return call()

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        data = super().get(key, start, length)
        self._add_bytes("get", len(data))
        return data

    def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        written = super().put_if_absent(key, data)
        self._add_bytes("put_if_absent", memoryview(data).nbytes)
        return written

    def _add_bytes(self, op: str, count: int) -> None:
        with self._lock:
            self.nbytes[op] += count


def flip_byte(data: bytes) -> bytes:
    """data with its middle byte inverted; empty data unchanged."""
    if not data:
        return data
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
