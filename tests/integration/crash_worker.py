"""A region process for the crash tests to kill.

Runs one scenario against the region in ``--dir`` and prints, flushed, one JSON line per step, so
the parent knows exactly what was acknowledged when the process died:

* ``{"event": "disk", "id": ..., "sha256": ...}`` a disk exists with this content;
* ``{"event": "writing", "disk": ..., "sha256": ...}`` a write starts; the hash once it lands;
* ``{"event": "wrote", "disk": ..., "sha256": ...}`` the write was acknowledged;
* ``{"event": "snapshotting", "disk": ..., "sha256": ...}`` a snapshot of this content is asked for;
* ``{"event": "snapshot", "id": ..., "disk": ..., "sha256": ...}`` it was acknowledged;
* ``{"event": "deleting" | "deleted", "id": ...}`` a snapshot delete starts / is acknowledged;
* ``{"event": "armed", ...}`` the kill is armed: the next matching call dies.

Hashes are computed from the worker's own model of what it wrote, never read back from the engine.

The process kills itself with SIGKILL at a precise point (``--kill OP --nth N``): the Nth call of a
store operation (``put_if_absent``, ``delete``, ``get``; ``--after`` lets the call finish first, so
its effect is durable but nothing that follows it happens), the Nth durable overlay sync of a disk
write (``overlay_sync``: the write's pages are on disk, its page bitmap not committed), the first
journal replay of an overwrite (``journal_replay``: committed, not yet copied into place), or the Nth
``os.link`` (``link``: inside ``LocalStore.put_if_absent``, the temp file written and fsynced but
not yet in place). The count starts when the scenario arms the kill, just before the step under
test. The ``churn`` scenario has no kill point: it loops until the parent kills it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from snapferry.engine import Engine, compact, gc
from snapferry.engine.head import Overlay
from snapferry.store import FailingStore, FaultSchedule, LocalStore

KIB = 1024
MIB = 1024 * KIB
STORE_OPS = ("put_if_absent", "delete", "get")


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def die(_message: str = "") -> Exception:
    """SIGKILL this process: no cleanup, no flush, no atexit."""
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # the signal is delivered before kill() returns; never reached
    raise AssertionError("still alive after SIGKILL")


class Killer:
    """Arms one kill point and counts the calls that reach it."""

    def __init__(self, op: str | None, nth: int, after: bool) -> None:
        self.op, self.nth, self.after = op, nth, after
        self.armed = False
        self.calls = 0
        self.store: FailingStore | None = None

    def arm(self) -> None:
        if self.op is None:
            return
        emit("armed", op=self.op, nth=self.nth, after=self.after)
        if self.op in STORE_OPS:
            assert self.store is not None
            self.store.schedule = FaultSchedule(ops={self.op}, nth={self.nth})
        self.armed = True

    def hit(self) -> bool:
        """Count one call of a patched function; True if this is the one to die at."""
        if not self.armed:
            return False
        self.calls += 1
        return self.calls == self.nth

    def install(self, data_dir: Path) -> FailingStore:
        """The store to open the engine with, and the patches for non-store kill points."""
        self.store = FailingStore(
            LocalStore(data_dir / "store"), FaultSchedule(), exc=die, after=self.after
        )
        if self.op == "overlay_sync":
            original_sync = Overlay.sync

            def sync(overlay: Overlay) -> None:
                original_sync(overlay)
                if self.hit():
                    die()

            Overlay.sync = sync  # type: ignore[method-assign,assignment]
        elif self.op == "journal_replay":
            original_replay = Overlay.replay_journal

            def replay(overlay: Overlay, pages: Any) -> None:
                if self.hit():
                    die()
                original_replay(overlay, pages)

            Overlay.replay_journal = replay  # type: ignore[method-assign]
        elif self.op == "link":
            original_link = os.link

            def link(src: str, dst: str, *args: object, **kwargs: object) -> None:
                if self.hit():
                    die()
                original_link(src, dst, *args, **kwargs)  # type: ignore[arg-type]

            os.link = link  # type: ignore[assignment]
        return self.store


class Region:
    """The engine plus a model of every disk's bytes, reporting each step as it is acknowledged."""

    def __init__(self, engine: Engine, seed: int) -> None:
        self.engine = engine
        self.rng = np.random.default_rng(seed)
        self.model: dict[str, bytearray] = {}
        self._sha: dict[str, str] = {}

    def sha(self, disk_id: str) -> str:
        """SHA-256 of the disk's model content (cached until the next write)."""
        sha = self._sha.get(disk_id)
        if sha is None:
            sha = self._sha[disk_id] = hashlib.sha256(self.model[disk_id]).hexdigest()
        return sha

    def random(self, n: int) -> bytes:
        return self.rng.bytes(n)

    def create_disk(self, size: int) -> str:
        disk_id = self.engine.create_disk(size).id
        self.model[disk_id] = bytearray(size)
        emit("disk", id=disk_id, sha256=self.sha(disk_id))
        return disk_id

    def adopt_disk(self, disk_id: str) -> None:
        """Take a disk's current content (verified by the parent) as the model."""
        size = self.engine.get_disk(disk_id).size_bytes
        self.model[disk_id] = bytearray(self.engine.read(disk_id, 0, size))
        self._sha.pop(disk_id, None)
        emit("disk", id=disk_id, sha256=self.sha(disk_id))

    def write(self, disk_id: str, offset: int, data: bytes) -> None:
        self.model[disk_id][offset : offset + len(data)] = data
        self._sha.pop(disk_id, None)
        emit("writing", disk=disk_id, sha256=self.sha(disk_id))
        self.engine.write(disk_id, offset, data)
        emit("wrote", disk=disk_id, sha256=self.sha(disk_id))

    def snapshot(self, disk_id: str) -> str:
        sha = self.sha(disk_id)
        emit("snapshotting", disk=disk_id, sha256=sha)
        sid = self.engine.create_snapshot(disk_id).id
        emit("snapshot", id=sid, disk=disk_id, sha256=sha)
        return sid

    def delete_snapshot(self, snapshot_id: str) -> None:
        emit("deleting", id=snapshot_id)
        self.engine.delete_snapshot(snapshot_id)
        emit("deleted", id=snapshot_id)

    def collect(self) -> None:
        report = gc.collect(self.engine, grace_seconds=0)
        emit("gc", **report.to_dict())


# --- scenarios: each builds some state, arms the kill, and runs the step under test ------------
def seal(region: Region, killer: Killer) -> None:
    """A snapshot of a few MiB of scattered writes: one pack."""
    disk = region.create_disk(24 * MIB)
    region.write(disk, 0, region.random(1 * MIB))
    region.write(disk, 5 * MIB + 4 * KIB, region.random(512 * KIB))
    region.write(disk, 20 * MIB - 1536, region.random(8 * KIB))  # partial pages at both edges
    region.snapshot(disk)
    region.write(disk, 512 * KIB, region.random(1 * MIB))
    region.write(disk, 12 * MIB, region.random(2 * MIB))
    killer.arm()
    region.snapshot(disk)


def bigseal(region: Region, killer: Killer) -> None:
    """A snapshot of 72 MiB of incompressible writes: more than one 64 MiB pack."""
    disk = region.create_disk(80 * MIB)
    region.write(disk, 0, region.random(4 * MIB))
    region.snapshot(disk)
    for i in range(3):
        region.write(disk, 4 * MIB + i * 24 * MIB, region.random(24 * MIB))
    killer.arm()
    region.snapshot(disk)


def _layered(region: Region) -> tuple[str, list[str]]:
    """S1 writes 1 MiB into each of chunks 0-3 (four objects in one pack); S2 rewrites part of
    chunks 0-2 (patches over S1's versions); S3 writes elsewhere."""
    disk = region.create_disk(24 * MIB)
    for chunk in range(4):
        region.write(disk, chunk * 4 * MIB, region.random(1 * MIB))
    s1 = region.snapshot(disk)
    for chunk in range(3):
        region.write(disk, chunk * 4 * MIB + 256 * KIB, region.random(256 * KIB))
    s2 = region.snapshot(disk)
    region.write(disk, 18 * MIB, region.random(64 * KIB))
    s3 = region.snapshot(disk)
    region.write(disk, 20 * MIB, region.random(64 * KIB))
    return disk, [s1, s2, s3]


def fold(region: Region, killer: Killer) -> None:
    """Deleting S1 merges its versions into S2's patches: new objects, written then committed."""
    _, (s1, _, _) = _layered(region)
    killer.arm()
    region.delete_snapshot(s1)


def collect(region: Region, killer: Killer) -> None:
    """After S1 is deleted and folded, S2's original patch pack is dead and S1's pack holds one
    live object in four, so GC repacks that object (one put), then deletes both old packs."""
    _, (s1, _, _) = _layered(region)
    region.delete_snapshot(s1)
    killer.arm()
    region.collect()


def tear(region: Region, killer: Killer) -> None:
    """Overwrite, within one head generation, pages an acknowledged write already holds, with a
    write that also covers pages it does not."""
    disk = region.create_disk(16 * MIB)
    region.write(disk, 0, region.random(1 * MIB))
    killer.arm()
    region.write(disk, 0, region.random(2 * MIB))


def churn(region: Region, killer: Killer) -> None:
    """Write, snapshot, delete, collect and compact at random until killed.

    Each write fills one whole 64 KiB block not yet written in the current head generation, so a
    write cut short can only land whole or not at all (``tear`` covers overwrites in place)."""
    disks = region.engine.list_disks()
    if disks:
        disk = disks[0].id
        region.adopt_disk(disk)
    else:
        disk = region.create_disk(8 * MIB)
    block = 64 * KIB
    blocks = region.engine.get_disk(disk).size_bytes // block
    region.snapshot(disk)  # a fresh head generation: nothing in it yet
    dirty: set[int] = set()
    emit("ready")
    rng = region.rng
    while True:
        roll = rng.random()
        if roll < 0.55 and len(dirty) < blocks:
            free = [b for b in rng.permutation(blocks).tolist()[:64] if b not in dirty]
            if free:
                dirty.add(free[0])
                region.write(disk, free[0] * block, region.random(block))
        elif roll < 0.75 or len(dirty) == blocks:
            region.snapshot(disk)
            dirty.clear()
        elif roll < 0.90:
            visible = region.engine.list_snapshots()
            if len(visible) > 1:
                region.delete_snapshot(visible[int(rng.integers(len(visible) - 1))].id)
        elif roll < 0.97:
            region.collect()
        else:
            compact.compact(region.engine)
            emit("compacted")


SCENARIOS: dict[str, Callable[[Region, Killer], None]] = {
    "seal": seal,
    "bigseal": bigseal,
    "fold": fold,
    "collect": collect,
    "tear": tear,
    "churn": churn,
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    parser.add_argument("--kill", choices=[*STORE_OPS, "overlay_sync", "journal_replay", "link"])
    parser.add_argument("--nth", type=int, default=1)
    parser.add_argument("--after", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    killer = Killer(args.kill, args.nth, args.after)
    store = killer.install(args.dir)
    engine = Engine.open(args.dir, store=store)
    SCENARIOS[args.scenario](Region(engine, args.seed), killer)
    engine.close()
    emit("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
