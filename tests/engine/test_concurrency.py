"""Snapshots taken while writers hammer the disk capture one instant: no torn writes, no gaps.

Writer threads each own a set of 64 KiB regions of one disk and fill a whole region per write with
a stamp unique to that write (its id, repeated); one writer uses ``write_many`` to stamp two
regions in one call. Every call is timed from just before it starts to just after it returns. A
snapshot thread meanwhile snapshots the disk again and again. Then, for every snapshot:

* every region holds a single stamp (or zeros): no write is ever split by a snapshot;
* per writer, the stamps seen are exactly the state after its first ``k`` writes, for one ``k``:
  a writer's later write is never visible without its earlier ones;
* those cuts meet at one instant inside the ``create_snapshot`` call: every write seen started
  before every write not seen returned.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from snapferry.engine import Engine

REGION = 64 * 1024
REGIONS = 192
SIZE = REGIONS * REGION
WRITERS = 3
WRITES_PER_WRITER = 90


@dataclass
class Writer:
    """One writer's plan and the times of its calls."""

    index: int
    plan: list[list[int]]
    """Regions stamped by each call, in order."""
    started: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)

    def stamp(self, call: int) -> int:
        return ((self.index + 1) << 32) | (call + 1)

    def owner_of(self, stamp: int) -> int:
        return (stamp >> 32) - 1

    def run(self, engine: Engine, disk: str, go: threading.Event) -> None:
        go.wait()
        for call, regions in enumerate(self.plan):
            data = np.full(REGION // 8, self.stamp(call), dtype="<u8").tobytes()
            self.started.append(time.perf_counter_ns())
            if len(regions) == 1:
                engine.write(disk, regions[0] * REGION, data)
            else:
                engine.write_many(disk, [(r * REGION, data) for r in regions])
            self.ended.append(time.perf_counter_ns())


@dataclass(frozen=True)
class Taken:
    id: str
    started: int
    ended: int


def make_writers(rng: random.Random) -> list[Writer]:
    writers = []
    for w in range(WRITERS):
        own = [r for r in range(REGIONS) if r % WRITERS == w]
        per_call = 2 if w == 0 else 1
        plan = [rng.sample(own, per_call) for _ in range(WRITES_PER_WRITER)]
        writers.append(Writer(w, plan))
    return writers


def stamps(content: bytes) -> np.ndarray:
    """The stamp of each region; fails if any region holds more than one value."""
    words = np.frombuffer(content, dtype="<u8").reshape(REGIONS, REGION // 8)
    torn = np.flatnonzero(~(words == words[:, :1]).all(axis=1))
    assert len(torn) == 0, f"regions {torn.tolist()} mix two writes"
    return words[:, 0].copy()


def cut_of(writer: Writer, seen: np.ndarray) -> int:
    """How many of the writer's calls a snapshot shows; fails unless that is a prefix."""
    lo, hi = 0, len(writer.plan)
    for region in range(writer.index, REGIONS, WRITERS):
        calls = [c for c, regions in enumerate(writer.plan) if region in regions]
        stamp = int(seen[region])
        if stamp == 0:
            hi = min(hi, calls[0] if calls else hi)
            continue
        assert writer.owner_of(stamp) == writer.index, f"region {region} has a foreign stamp"
        call = (stamp & 0xFFFFFFFF) - 1
        assert call in calls, f"region {region} holds a stamp its writes never put there"
        later = [c for c in calls if c > call]
        lo = max(lo, call + 1)
        hi = min(hi, later[0] if later else hi)
    assert lo <= hi, (
        f"writer {writer.index}: a later write is visible without an earlier one "
        f"(needs at least {lo} calls, at most {hi})"
    )
    return lo


def test_snapshots_under_concurrent_writes_capture_one_instant(tmp_path: Path) -> None:
    rng = random.Random(4242)
    writers = make_writers(rng)
    taken: list[Taken] = []
    go = threading.Event()
    errors: list[BaseException] = []

    with Engine.open(tmp_path / "region") as engine:
        disk = engine.create_disk(SIZE).id

        def guarded(target: object, *args: object) -> None:
            try:
                target(*args)  # type: ignore[operator]
            except BaseException as exc:  # reported on the main thread
                errors.append(exc)

        def snapshotter() -> None:
            go.wait()
            while any(t.is_alive() for t in threads):
                started = time.perf_counter_ns()
                sid = engine.create_snapshot(disk).id
                taken.append(Taken(sid, started, time.perf_counter_ns()))
                time.sleep(rng.uniform(0, 0.02))

        threads = [
            threading.Thread(
                target=guarded, args=(w.run, engine, disk, go), name=f"writer-{w.index}"
            )
            for w in writers
        ]
        snapper = threading.Thread(target=guarded, args=(snapshotter,), name="snapshotter")
        for t in [*threads, snapper]:
            t.start()
        go.set()
        for t in [*threads, snapper]:
            t.join(timeout=60)
            assert not t.is_alive(), f"{t.name} hung"
        if errors:
            raise errors[0]

        assert len(taken) >= 5, "too few snapshots overlapped the writes to prove anything"
        partial = 0
        for snap in taken:
            seen = stamps(engine.read_snapshot(snap.id, 0, SIZE))
            cuts = [cut_of(w, seen) for w in writers]
            partial += any(0 < k < len(w.plan) for k, w in zip(cuts, writers, strict=True))
            included = [w.started[k - 1] for k, w in zip(cuts, writers, strict=True) if k]
            excluded = [w.ended[k] for k, w in zip(cuts, writers, strict=True) if k < len(w.plan)]
            earliest = max([snap.started, *included])
            latest = min([snap.ended, *excluded])
            assert earliest < latest, (
                f"snapshot {snap.id} shows writer cuts {cuts} that no single instant "
                "during its creation explains"
            )
        assert partial, "no snapshot landed while the writes were under way"
        final = stamps(engine.read(disk, 0, SIZE))
        for w in writers:
            assert cut_of(w, final) == len(w.plan)


@pytest.mark.parametrize("incremental", [True, False])
def test_snapshot_during_write_many_sees_all_or_none(tmp_path: Path, incremental: bool) -> None:
    """One ``write_many`` spanning chunks is one unit for a concurrent snapshot of either kind."""
    with Engine.open(tmp_path / "region") as engine:
        disk = engine.create_disk(SIZE).id
        ids: list[str] = []
        done = threading.Event()

        def snapshotter() -> None:
            while not done.is_set():
                ids.append(engine.create_snapshot(disk, incremental=incremental).id)

        thread = threading.Thread(target=snapshotter)
        thread.start()
        try:
            for call in range(1, 25):
                data = np.full(REGION // 8, call, dtype="<u8").tobytes()
                engine.write_many(disk, [(r * REGION, data) for r in range(0, REGIONS, 16)])
        finally:
            done.set()
            thread.join(timeout=60)
        for sid in ids:
            seen = stamps(engine.read_snapshot(sid, 0, SIZE))[::16]
            assert len(set(seen.tolist())) == 1, f"snapshot {sid} split a write_many: {seen}"
