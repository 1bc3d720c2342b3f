"""Zone-redundant storage: every object kept in the store of every zone of a region.

A ``ZonedStore`` is a ``ChunkStore`` over one store per zone (an independent failure domain):

* ``put_if_absent`` writes to every zone at once and, once each zone has answered, succeeds if
  at least ``quorum`` zones (two, or every zone when there are fewer) hold the object durably;
  a zone that failed is filled later by the engine's zone repair. With fewer than ``quorum`` the
  put fails, and the zones that did take the object keep it until the caller deletes it (as any
  failed put, it may be left). It waits for every zone, not just the quorum, because the
  caller's buffer is not copied: a zone's store bounds its own calls (timeouts).
* ``get`` reads from the first zone that answers, in zone order. Stores cannot tell corrupt
  bytes from good ones, so callers that can (the engine verifies every frame against its id)
  read through ``replicas`` instead: each zone's answer in turn, until one verifies; then
  ``fill`` copies it into zones that lack it, and ``mend`` (given a copy checked whole)
  replaces damaged copies.
* ``has``/``size`` answer from any zone holding the object; ``keys`` is the union of what every
  reachable zone lists; ``delete`` removes the object from every zone that answers (at least
  ``quorum`` of them).

Only the engine knows which objects should exist, so bringing redundancy back after a zone was
lost or replaced — copying what a zone misses, removing what it kept after a deletion — is the
engine's zone repair (``snapferry.engine.zones``), which uses ``zones``.

Zones are named (``"1"``, ``"2"``, ...) as the region's configuration names them.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from snapferry.errors import InvalidInput, ObjectNotFound, StoreError
from snapferry.store.base import ChunkStore

log = logging.getLogger(__name__)
QUORUM = 2
"""Zones that must hold an object before a put is acknowledged (fewer zones: all of them)."""


class ZonedStore:
    """One object in every zone's store (see the module docstring)."""

    def __init__(self, zones: Mapping[str, ChunkStore], quorum: int = QUORUM) -> None:
        if not zones:
            raise InvalidInput("a zone-redundant store needs at least one zone")
        self.zones: dict[str, ChunkStore] = dict(zones)
        self.quorum = min(quorum, len(self.zones))
        self._pool = ThreadPoolExecutor(len(self.zones), thread_name_prefix="zone-put")
        self._stripes = [threading.Lock() for _ in range(64)]
        """Puts of one key in this process go one at a time, so racing writers of different
        bytes cannot each win a different zone. (Across processes they could; the engine never
        writes one key twice: packs are named by fresh ids.)"""

    def __repr__(self) -> str:
        return f"ZonedStore({self.zones!r})"

    # --- writes ----------------------------------------------------------------------------
    def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        """Store data in every zone; True if some zone had to write it. Durable in at least
        ``quorum`` zones on return; StoreError (the first zone's failure) otherwise. Every
        zone's write has ended when this returns (data may be reused)."""
        with self._stripes[hash(key) % len(self._stripes)]:
            return self._put(key, data)

    def _put(self, key: str, data: bytes | memoryview) -> bool:
        futures = {
            zone: self._pool.submit(store.put_if_absent, key, data)
            for zone, store in self.zones.items()
        }
        wait(futures.values())  # every zone's write ended: the caller may reuse data
        wrote, held, failures = False, 0, []
        for zone, future in futures.items():
            try:
                wrote |= future.result()
                held += 1
            except InvalidInput:
                raise
            except Exception as exc:  # this zone is down or full: repair fills it later
                failures.append((zone, exc))
        if held < self.quorum:
            zone, first = failures[0]
            if isinstance(first, StoreError):
                raise first
            raise StoreError(f"zone {zone}: {first}", key=key) from first
        for zone, failure in failures:
            log.warning("zone %s did not take %s (left for repair): %s", zone, key, failure)
        return wrote

    def delete(self, key: str) -> bool:
        """Remove the object from every zone that answers; True if one of them held it. Raises
        the first zone's failure if fewer than ``quorum`` answered. A zone that was down keeps
        its copy: an orphan that the engine's zone repair removes once the zone is back."""
        existed, answered, failure = False, 0, None
        for store in self.zones.values():
            try:
                existed |= store.delete(key)
                answered += 1
            except InvalidInput:
                raise
            except StoreError as exc:
                failure = failure or exc
        if answered < self.quorum and failure is not None:
            raise failure
        return existed

    # --- reads -----------------------------------------------------------------------------
    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        errors: list[StoreError] = []
        for _, got in self.replicas(key, start, length):
            if not isinstance(got, StoreError):
                return got
            errors.append(got)
        raise self._unreadable(key, errors)

    def replicas(
        self, key: str, start: int = 0, length: int | None = None
    ) -> Iterator[tuple[str, bytes | StoreError]]:
        """Each zone's answer for the range, in zone order, read only when asked for: its
        bytes, or the StoreError it gave (``ObjectNotFound`` where it lacks the object)."""
        for zone, store in self.zones.items():
            try:
                yield zone, store.get(key, start, length)
            except StoreError as exc:
                yield zone, exc

    def _unreadable(self, key: str, errors: list[StoreError]) -> StoreError:
        """What a read that every zone refused raises: ObjectNotFound when at least ``quorum``
        zones said they lack the object (an acknowledged one is in one of them), else the
        failure of a zone that could not be reached."""
        absent = sum(isinstance(e, ObjectNotFound) for e in errors)
        down = [e for e in errors if not isinstance(e, ObjectNotFound)]
        if absent >= self.quorum or not down:
            return ObjectNotFound(f"no object {key!r} in any zone", key=key)
        return down[0]

    def has(self, key: str) -> bool:
        for store in self.zones.values():
            try:
                if store.has(key):
                    return True
            except StoreError:  # a zone down: another may hold it
                continue
        return False

    def size(self, key: str) -> int:
        errors: list[StoreError] = []
        for store in self.zones.values():
            try:
                return store.size(key)
            except StoreError as exc:
                errors.append(exc)
        raise self._unreadable(key, errors)

    def keys(self, prefix: str = "") -> Iterator[str]:
        """The union of every reachable zone's keys, ascending, each once."""
        last = None
        for key in heapq.merge(*(self._zone_keys(z, prefix) for z in self.zones)):
            if key != last:
                yield key
                last = key

    def _zone_keys(self, zone: str, prefix: str) -> Iterator[str]:
        try:
            yield from self.zones[zone].keys(prefix)
        except StoreError as exc:
            log.warning("zone %s cannot list its keys: %s", zone, exc)

    # --- redundancy ------------------------------------------------------------------------
    def present(self, zone: str) -> bool:
        """Whether the zone's store is there (a local store's root exists); a zone whose store
        cannot say is taken as present."""
        root = getattr(self.zones[zone], "root", None)
        return root is None or Path(root).is_dir()

    def fill(self, key: str, source: str, zones: list[str]) -> None:
        """Copy the object from the ``source`` zone into ``zones`` that lack it (never over a
        copy they hold). Does nothing if the source no longer holds it."""
        try:
            data = self.zones[source].get(key)
        except ObjectNotFound:
            return
        failure = None
        for zone in zones:
            try:
                self.zones[zone].put_if_absent(key, data)
            except StoreError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def mend(self, key: str, source: str, damaged: list[str]) -> None:
        """Replace the object in the ``damaged`` zones with the ``source`` zone's copy, which
        the caller has checked whole (every frame anyone names verified: scrub). Zones that
        cannot be reached are skipped and the first such failure raised at the end. Does
        nothing if the source no longer holds it. A lost zone is left to the zone repair,
        which revives it: a read never recreates one."""
        try:
            data = self.zones[source].get(key)
        except ObjectNotFound:
            return
        failure = None
        for zone in damaged:
            store = self.zones[zone]
            try:
                store.delete(key)
                store.put_if_absent(key, data)
            except StoreError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        log.info("mended %s in zone(s) %s from zone %s", key, ", ".join(damaged), source)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def replicas(
    store: ChunkStore,
    key: str,
    start: int = 0,
    length: int | None = None,
    zone: str | None = None,
) -> Iterator[tuple[str, bytes | StoreError]]:
    """Each copy of a range a store can offer, as ``ZonedStore.replicas``: every zone's in
    turn for a zoned store (only ``zone``'s when one is named: an object kept in that zone
    alone), the one copy (zone ``""``) for any other store."""
    if isinstance(store, ZonedStore):
        if zone is None:
            yield from store.replicas(key, start, length)
            return
        store, name = store.zones[zone], zone
    else:
        name = ""
    try:
        yield name, store.get(key, start, length)
    except StoreError as exc:
        yield name, exc


def placed(store: ChunkStore, zone: str | None) -> ChunkStore:
    """Where an object placed in ``zone`` is written: that zone's store, or (None) the whole
    store — every zone of a zoned one."""
    if zone is not None and isinstance(store, ZonedStore):
        return store.zones[zone]
    return store
