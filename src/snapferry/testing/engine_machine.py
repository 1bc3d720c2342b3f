"""A model-based test of the engine: random operations checked against plain ``bytearray`` disks.

The model keeps each disk's bytes, each snapshot's bytes, and for each snapshot the pages written
since the previous snapshot of its family (none for a copy of a full snapshot, which starts a
family of its own). Every disk and snapshot must read back exactly its model
content after any operation that could disturb it (writes, snapshots, deletes, GC, compaction,
reopening), and every diff must equal the model's: the pages written between the two snapshots,
split by whether the newer content is non-zero (changed) or zero (cleared).

Maintenance also runs in the background, as on a serving region: GC and compaction passes back
to back in a thread of their own, started by one rule and finished by another, while the rules
between go on writing, snapshotting, folding and reading. That thread moves only on the turns
rules give it (``TurnLock``: one hold of the engine's lock and the work up to its next), so the
rules decide what lands between a pass's reading and its commit, and a failing run repeats. The
engine's clock is the machine's own and moves ten seconds between rules, never during one, so
GC's grace (five seconds) outlasts every operation in flight.

Requires the ``dev`` extra (hypothesis). Run it with ``EngineMachine.TestCase`` from pytest.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from snapferry.engine import Engine
from snapferry.engine.compact import compact
from snapferry.engine.gc import collect
from snapferry.errors import InvalidInput
from snapferry.meta import catalog
from snapferry.settings import CHUNK, PAGE, SECTOR

SIZES = [CHUNK + SECTOR, 2 * CHUNK + PAGE + SECTOR, 3 * CHUNK]
TICK = 10.0  # seconds of the engine's clock between two rules
ZONES = ("1", "2", "3")
PLACEMENTS: tuple[str | None, ...] = (None, "1", "2")
"""Where a snapshot's data goes: every zone (ZRS) or one zone alone (LRS)."""
GRACE = 5.0  # GC's grace in the background: more than no time, less than a tick


class TurnLock:
    """The engine's lock, which one thread (``stepped``) takes only when given a turn.

    Every other thread takes it as usual. ``turn()`` lets the stepped thread take it once (its
    outermost hold: an RLock nests) and returns once that hold has ended and the thread waits
    for its next turn, or has ended: what it does without the lock happens within a turn too,
    never beside the rules. ``free()`` lets it take the lock as it likes from then on."""

    def __init__(self, inner: threading.RLock) -> None:
        self.inner = inner
        self.stepped: threading.Thread | None = None
        self.changed = threading.Condition()
        self.granted = 0
        self.ended = 0
        self.parked = False
        self.freed = False
        self.depth = threading.local()

    def step(self, thread: threading.Thread) -> None:
        with self.changed:
            self.stepped, self.granted, self.ended = thread, 0, 0
            self.parked = self.freed = False

    def turn(self, timeout: float = 120.0) -> None:
        with self.changed:
            if self.stepped is None:
                return
            target = self.ended + 1
            self.granted += 1
            self.changed.notify_all()
            stepped = self.stepped
            if not self.changed.wait_for(
                lambda: (self.ended >= target and self.parked) or not stepped.is_alive(),
                timeout,
            ):
                raise AssertionError("background maintenance took two minutes over one turn")
            self.granted = 0  # a turn the thread ended without taking is not kept

    def free(self) -> None:
        with self.changed:
            self.freed = True
            self.changed.notify_all()

    def _outermost(self) -> bool:
        return threading.current_thread() is self.stepped and not getattr(self.depth, "n", 0)

    def __enter__(self) -> None:
        if self._outermost():
            with self.changed:
                self.parked = True
                self.changed.notify_all()
                if not self.changed.wait_for(lambda: self.freed or self.granted > 0, 600.0):
                    raise AssertionError("background maintenance waited ten minutes for a turn")
                self.parked = False
                if not self.freed:
                    self.granted -= 1
        self.inner.acquire()
        self.depth.n = getattr(self.depth, "n", 0) + 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.depth.n -= 1
        self.inner.release()
        if self._outermost():
            with self.changed:
                self.ended += 1
                self.changed.notify_all()


@dataclass
class ModelSnapshot:
    content: bytes
    family: str
    seq: int
    touched: frozenset[int]
    full: bool = False
    deleted: bool = False


@dataclass
class ModelDisk:
    content: bytearray
    family: str
    touched: set[int] = field(default_factory=set)


def _pages(offset: int, length: int) -> set[int]:
    return set(range(offset // PAGE, -(-(offset + length) // PAGE)))


def _extents(pages: list[int], size: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for p in sorted(pages):
        start, end = p * PAGE, min((p + 1) * PAGE, size)
        if out and out[-1][0] + out[-1][1] == start:
            out[-1] = (out[-1][0], out[-1][1] + end - start)
        else:
            out.append((start, end - start))
    return out


def model_diff(
    snaps: dict[str, ModelSnapshot], a: str, b: str
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Changed and cleared extents between two snapshots of one family, from the model."""
    lo, hi = sorted((snaps[a].seq, snaps[b].seq))
    family = snaps[a].family
    touched: set[int] = set()
    for s in snaps.values():
        if s.family == family and lo < s.seq <= hi:
            touched |= s.touched
    content = np.frombuffer(snaps[b].content, dtype=np.uint8)
    size = len(content)
    changed: list[int] = []
    cleared: list[int] = []
    for p in touched:
        if p * PAGE >= size:
            continue
        (changed if content[p * PAGE : (p + 1) * PAGE].any() else cleared).append(p)
    return _extents(changed, size), _extents(cleared, size)


class EngineMachine(RuleBasedStateMachine):
    """Drives one Engine in a temporary directory alongside the model."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="snapferry-model-"))
        self.now = 1_000_000_000.0
        self.zoned = False
        self.engine = self._open()
        self.disks: dict[str, ModelDisk] = {}
        self.snaps: dict[str, ModelSnapshot] = {}
        self.seq = 0
        self.stale: set[str] = set()
        self.background: threading.Thread | None = None
        self.stop_background = threading.Event()
        self.background_errors: list[BaseException] = []

    def _open(self) -> Engine:
        engine = Engine.open(self.dir, clock=lambda: self.now, zones=ZONES if self.zoned else None)
        self.turns = TurnLock(engine.lock)
        engine.lock = self.turns  # type: ignore[assignment]
        return engine

    @initialize(zoned=st.booleans())
    def region(self, zoned: bool) -> None:
        """A region with three zones (LRS and ZRS snapshots), or one store (the default's
        westus)."""
        if zoned:
            self.engine.close()
            self.zoned = True
            self.engine = self._open()

    def _placed(self, zone: str | None) -> str | None:
        return zone if self.zoned else None

    def teardown(self) -> None:
        try:
            self._join_background()
        finally:
            self.engine.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _join_background(self) -> None:
        """Stop background maintenance (after its current pass) and raise what it raised."""
        if self.background is None:
            return
        self.stop_background.set()
        self.turns.free()
        self.background.join()
        self.background = None
        errors, self.background_errors = self.background_errors, []
        if errors:
            raise errors[0]

    def _live_snaps(self) -> list[str]:
        return [s for s, m in self.snaps.items() if not m.deleted]

    def _everything_stale(self) -> None:
        self.stale = set(self.disks) | set(self._live_snaps())

    # --- rules ---------------------------------------------------------------------------------
    @precondition(lambda self: len(self.disks) < 3)
    @rule(size=st.sampled_from(SIZES))
    def create_disk(self, size: int) -> None:
        info = self.engine.create_disk(size)
        self.disks[info.id] = ModelDisk(bytearray(size), info.family_id)
        self.stale.add(info.id)

    @precondition(lambda self: bool(self.disks))
    @rule(data=st.data(), count=st.integers(1, 6))
    def write(self, data: st.DataObject, count: int) -> None:
        disk_id = data.draw(st.sampled_from(list(self.disks)))
        for _ in range(count):
            self._write_one(data, disk_id)

    def _write_one(self, data: st.DataObject, disk_id: str) -> None:
        # Writes cluster around a few hot spots so that later writes overlap earlier ones, as
        # they must for patches, clears and folds to be exercised.
        sectors = data.draw(st.integers(1, 40))
        fill = data.draw(st.sampled_from(["random", "zero", "byte"]))
        spot = data.draw(st.sampled_from(["start", "boundary", "end", "anywhere"]))
        jitter = data.draw(st.integers(0, 24))
        disk = self.disks[disk_id]
        size = len(disk.content)
        length = min(sectors * SECTOR, size)
        room = (size - length) // SECTOR
        base = {
            "start": 0,
            "boundary": max(0, CHUNK // SECTOR - 12),
            "end": room,
            "anywhere": data.draw(st.integers(0, room)),
        }[spot]
        offset = SECTOR * max(0, min(room, base + jitter - (12 if spot == "end" else 0)))
        if fill == "zero":
            payload = bytes(length)
        elif fill == "byte":
            payload = bytes([data.draw(st.integers(1, 255))]) * length
        else:
            # a seed, not st.binary: kilobytes of drawn bytes would exhaust hypothesis's buffer
            seed = data.draw(st.integers(0, 2**32 - 1))
            payload = np.random.default_rng(seed).bytes(length)
        self.engine.write(disk_id, offset, payload)
        disk.content[offset : offset + length] = payload
        disk.touched |= _pages(offset, length)
        self.stale.add(disk_id)

    @precondition(lambda self: bool(self.disks))
    @rule(data=st.data(), incremental=st.booleans(), zone=st.sampled_from(PLACEMENTS))
    def snapshot(self, data: st.DataObject, incremental: bool, zone: str | None) -> None:
        self._snapshot(data.draw(st.sampled_from(list(self.disks))), incremental, zone)

    def _snapshot(self, disk_id: str, incremental: bool, zone: str | None = None) -> None:
        disk = self.disks[disk_id]
        info = self.engine.create_snapshot(
            disk_id, incremental=incremental, zone=self._placed(zone)
        )
        self.seq += 1
        self.snaps[info.id] = ModelSnapshot(
            bytes(disk.content), disk.family, self.seq, frozenset(disk.touched), not incremental
        )
        disk.touched = set()
        self.stale |= {info.id, disk_id}
        self._check_family(disk.family)

    @precondition(lambda self: bool(self.disks))
    @rule(data=st.data(), rounds=st.integers(2, 4), incremental=st.booleans())
    def write_and_snapshot(self, data: st.DataObject, rounds: int, incremental: bool) -> None:
        """A disk's life between backups: a few writes, a snapshot, again — long families."""
        disk_id = data.draw(st.sampled_from(list(self.disks)))
        for _ in range(rounds):
            for _ in range(data.draw(st.integers(1, 4))):
                self._write_one(data, disk_id)
            self._snapshot(disk_id, incremental, data.draw(st.sampled_from(PLACEMENTS)))

    @precondition(lambda self: bool(self._live_snaps()))
    @rule(data=st.data())
    def copy_snapshot(self, data: st.DataObject) -> None:
        """Copy a full snapshot into a family of its own; an incremental one is refused."""
        sid = data.draw(st.sampled_from(self._live_snaps()))
        source = self.snaps[sid]
        if not source.full:
            with pytest.raises(InvalidInput):
                self.engine.copy_snapshot(sid)
            return
        info = self.engine.copy_snapshot(sid, self._placed(data.draw(st.sampled_from(PLACEMENTS))))
        self.seq += 1
        self.snaps[info.id] = ModelSnapshot(
            source.content, info.family_id, self.seq, frozenset(), full=True
        )
        self.stale.add(info.id)
        self._check_allocated(info.id)

    @precondition(lambda self: bool(self._live_snaps()) and len(self.disks) < 4)
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from(self._live_snaps()))
        info = self.engine.restore_disk(sid)
        self.disks[info.id] = ModelDisk(bytearray(self.snaps[sid].content), info.family_id)
        self.stale.add(info.id)

    @precondition(lambda self: bool(self.disks))
    @rule(data=st.data(), extra_sectors=st.integers(1, 2048))
    def grow(self, data: st.DataObject, extra_sectors: int) -> None:
        disk_id = data.draw(st.sampled_from(list(self.disks)))
        disk = self.disks[disk_id]
        self.engine.resize_disk(disk_id, len(disk.content) + extra_sectors * SECTOR)
        disk.content.extend(bytes(extra_sectors * SECTOR))
        self.stale.add(disk_id)

    @precondition(lambda self: len(self.disks) > 1)
    @rule(data=st.data())
    def delete_disk(self, data: st.DataObject) -> None:
        disk_id = data.draw(st.sampled_from(list(self.disks)))
        self.engine.delete_disk(disk_id)
        del self.disks[disk_id]
        self._everything_stale()

    @precondition(lambda self: bool(self._live_snaps()))
    @rule(data=st.data())
    def delete_snapshot(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from(self._live_snaps()))
        self.engine.delete_snapshot(sid)
        self.snaps[sid].deleted = True
        self._everything_stale()
        self._check_family(self.snaps[sid].family)

    @rule(task=st.sampled_from(["gc", "compact", "reopen"]), max_depth=st.integers(0, 3))
    def maintain(self, task: str, max_depth: int) -> None:
        self._join_background()
        if task == "gc":
            collect(self.engine, grace_seconds=0)
        elif task == "compact":
            compact(self.engine, max_depth=max_depth)
        else:
            self.engine.close()
            self.engine = self._open()
        self._after_maintenance()

    @precondition(lambda self: self.background is None)
    @rule(
        max_depth=st.integers(0, 2),
        coverage=st.sampled_from([0.0, 0.25]),
        repack_below=st.sampled_from([0.5, 0.9]),
    )
    def start_background_maintenance(
        self, max_depth: int, coverage: float, repack_below: float
    ) -> None:
        """GC and compaction passes back to back while the next rules run, taking the engine's
        lock only on the turns the rules give them."""
        engine, stop, errors = self.engine, self.stop_background, self.background_errors
        stop.clear()

        def passes() -> None:
            try:
                while not stop.is_set():
                    collect(engine, grace_seconds=GRACE, repack_below=repack_below)
                    compact(engine, max_depth=max_depth, coverage=coverage)
            except BaseException as exc:  # raised in the rules' thread by _join_background
                errors.append(exc)

        self.background = threading.Thread(target=passes, name="background-maintenance")
        self.turns.step(self.background)
        self.background.start()

    @precondition(lambda self: self.background is not None)
    @rule(turns=st.integers(1, 4))
    def background_turns(self, turns: int) -> None:
        """Let background maintenance take the engine's lock a few times (commit what it
        worked out, take references, mark packs dead…)."""
        for _ in range(turns):
            self.turns.turn()

    @precondition(lambda self: self.background is not None)
    @rule()
    def finish_background_maintenance(self) -> None:
        self._join_background()
        self._after_maintenance()

    def _after_maintenance(self) -> None:
        self._everything_stale()
        for family in dict.fromkeys(m.family for m in self.snaps.values()):
            self._check_family(family)

    @precondition(lambda self: len(self._live_snaps()) >= 1)
    @rule(data=st.data())
    def diff(self, data: st.DataObject) -> None:
        a = data.draw(st.sampled_from(self._live_snaps()))
        family = [s for s in self._live_snaps() if self.snaps[s].family == self.snaps[a].family]
        b = data.draw(st.sampled_from(family))
        self._check_diff(a, b)
        self._check_allocated(b)

    def _check_diff(self, a: str, b: str) -> None:
        got = self.engine.diff(a, b)
        changed, cleared = model_diff(self.snaps, a, b)
        assert got.changed == changed, ("changed", a, b)
        assert got.cleared == cleared, ("cleared", a, b)

    def _check_allocated(self, b: str) -> None:
        content = np.frombuffer(self.snaps[b].content, dtype=np.uint8)
        size = len(content)
        pages = [p for p in range(-(-size // PAGE)) if content[p * PAGE : (p + 1) * PAGE].any()]
        assert self.engine.allocated(b) == _extents(pages, size)

    def _check_family(self, family: str) -> None:
        """Every diff among the newest few snapshots of a family (diffs read metadata only)."""
        members = [s for s in self._live_snaps() if self.snaps[s].family == family][-5:]
        for a in members:
            for b in members:
                self._check_diff(a, b)

    # --- invariants ----------------------------------------------------------------------------
    @invariant()
    def time_passes(self) -> None:
        """Between two rules, so that no operation of the rules is in flight as it moves."""
        self.now += TICK
        assert not self.background_errors, self.background_errors

    @invariant()
    def contents_match(self) -> None:
        for name in sorted(self.stale):
            if name in self.disks:
                want = bytes(self.disks[name].content)
                got = self.engine.read(name, 0, len(want))
            else:
                want = self.snaps[name].content
                got = self.engine.read_snapshot(name, 0, len(want))
            assert got == want, f"{name} differs from its model"
        self.stale.clear()

    @invariant()
    def zone_redundant_snapshots_read_only_zone_redundant_packs(self) -> None:
        """What a ZRS snapshot reads through (its lineage) is in every zone: hardened."""
        with self.turns:
            with self.engine.db.connect() as conn:
                rows = {r.id: r for r in catalog.all_snapshots(conn)}
            for sid, row in rows.items():
                if row.zone is not None or row.state != "ready":
                    continue
                packs: set[int] = set()
                for node in self.engine.maps.lineage(sid):
                    packs.update(np.unique(node.map.entries["pack"]).tolist())
                with self.engine.db.connect() as conn:
                    zonal = catalog.zonal_packs(conn, sorted(packs))
                assert not zonal, f"ZRS snapshot {sid} reads zonal packs {zonal}"

    @invariant()
    def listings_match(self) -> None:
        assert {d.id for d in self.engine.list_disks()} == set(self.disks)
        assert {s.id for s in self.engine.list_snapshots()} == set(self._live_snaps())
