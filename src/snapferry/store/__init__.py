"""Chunk stores: where snapferry keeps bytes.

Nouns:

* **key** — an object's name: relative, lowercase, '/'-separated, no ``..`` (``ids.validate_key``).
* **object** — the immutable bytes stored under a key. Written once by ``put_if_absent``, read
  whole or by **range** (``start``, ``length``, clipped at the end), removed by ``delete``.
* **store** — anything meeting the ``ChunkStore`` protocol (``base.py``). Backends: ``LocalStore``
  (files under a root directory) and ``MemoryStore`` (a dict, for tests).
* **store URL** — how configuration names a store; see ``open_store``.
* **wrapper** — a store composed around another to add one behaviour without the backend knowing:
  fault injection (``FailingStore``, ``CorruptingStore`` driven by a ``FaultSchedule``), latency
  (``DelayingStore``), accounting (``CountingStore``).

Every backend must pass ``snapferry.testing.store_contract.ChunkStoreContract``.
"""

from __future__ import annotations

from pathlib import Path

from snapferry.errors import InvalidInput
from snapferry.store.base import ChunkStore
from snapferry.store.local import LocalStore
from snapferry.store.memory import MemoryStore
from snapferry.store.wrappers import (
    CorruptingStore,
    CountingStore,
    DelayingStore,
    FailingStore,
    FaultSchedule,
    StoreWrapper,
)

__all__ = [
    "ChunkStore",
    "CorruptingStore",
    "CountingStore",
    "DelayingStore",
    "FailingStore",
    "FaultSchedule",
    "LocalStore",
    "MemoryStore",
    "StoreWrapper",
    "open_store",
]


def open_store(url: str) -> ChunkStore:
    """The store a URL names.

    * ``file:///abs/path`` or a plain filesystem path (relative paths are taken from the current
      directory) — a ``LocalStore`` rooted there, created if missing.
    * ``memory://`` — a new, empty ``MemoryStore``.

    Anything else raises ``InvalidInput``. File URLs are taken literally: no host part, no
    percent-decoding.
    """
    if not url:
        raise InvalidInput("empty store URL; expected file:///abs/path, a path, or memory://")
    scheme, sep, rest = url.partition("://")
    if not sep:
        return LocalStore(Path(url))
    if scheme == "file":
        if not rest.startswith("/"):
            raise InvalidInput(f"store URL {url!r}: file URLs need an absolute path (file:///...)")
        return LocalStore(Path(rest))
    if scheme == "memory":
        if rest:
            raise InvalidInput(f"store URL {url!r}: memory:// takes no path")
        return MemoryStore()
    raise InvalidInput(
        f"unsupported store URL {url!r}; expected file:///abs/path, a path, or memory://"
    )
