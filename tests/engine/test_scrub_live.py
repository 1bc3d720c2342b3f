"""Maintenance in a serving region: scrub holds the engine lock only to take and recheck
references, GC only for metadata, compaction only to commit each snapshot's new map, so
snapshots and writes go on while they read, copy, write and delete packs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from snapferry.engine import Engine
from snapferry.engine.compact import CompactReport, compact
from snapferry.engine.gc import GcReport, collect
from snapferry.engine.scrub import ScrubReport, scrub
from snapferry.settings import CHUNK
from snapferry.store import DelayingStore, LocalStore

READ_DELAY = 0.4


def test_a_snapshot_and_writes_go_on_while_scrub_reads(tmp_path: Path) -> None:
    store = DelayingStore(LocalStore(tmp_path / "store"), READ_DELAY, ops=["get"])
    with Engine.open(tmp_path, store=store) as engine:
        rng = np.random.default_rng(3)
        disk = engine.create_disk(8 * CHUNK).id
        for round_ in range(3):  # three snapshots, three packs: scrub reads for > 1 s
            engine.write(disk, round_ * CHUNK, rng.bytes(CHUNK))
            engine.create_snapshot(disk)
        reading = threading.Event()
        done: list[ScrubReport] = []

        def run() -> None:
            done.append(scrub(engine, progress=lambda n, total: reading.set()))

        scrubbing = threading.Thread(target=run)
        scrubbing.start()
        assert reading.wait(10)
        started = time.monotonic()
        engine.write(disk, 5 * CHUNK, rng.bytes(CHUNK))
        snap = engine.create_snapshot(disk)
        took = time.monotonic() - started
        still_scrubbing = scrubbing.is_alive()
        scrubbing.join()
        assert still_scrubbing, "the scrub ended before the snapshot could show anything"
        assert took < READ_DELAY, f"the snapshot waited {took:.2f} s for the scrub"
        assert done[0].clean and done[0].packs == 3
        assert engine.get_snapshot(snap.id).state == "ready"


def test_a_snapshot_goes_on_while_gc_deletes_dead_packs(tmp_path: Path) -> None:
    deleting = threading.Event()

    def slow(seconds: float) -> None:
        deleting.set()
        time.sleep(seconds)

    store = DelayingStore(LocalStore(tmp_path / "store"), READ_DELAY, ops=["delete"], sleep=slow)
    with Engine.open(tmp_path, store=store) as engine:
        rng = np.random.default_rng(4)
        disk = engine.create_disk(8 * CHUNK).id
        snaps = []
        for _ in range(4):  # each snapshot rewrites chunk 0 into a pack of its own
            engine.write(disk, 0, rng.bytes(CHUNK))
            snaps.append(engine.create_snapshot(disk).id)
        keep = engine.read(disk, 0, 8 * CHUNK)
        for snap in snaps[:-1]:
            engine.delete_snapshot(snap)  # folded into the last: their packs are unnamed
        done: list[GcReport] = []
        collecting = threading.Thread(
            target=lambda: done.append(collect(engine, grace_seconds=0, repack_below=0))
        )
        collecting.start()
        assert deleting.wait(10)
        started = time.monotonic()
        snap = engine.create_snapshot(disk)
        took = time.monotonic() - started
        still_collecting = collecting.is_alive()
        collecting.join()
        assert still_collecting, "gc ended before the snapshot could show anything"
        assert took < READ_DELAY, f"the snapshot waited {took:.2f} s for gc"
        assert done[0].deleted >= 1
        assert engine.read_snapshot(snap.id, 0, 8 * CHUNK) == keep
        assert engine.read_snapshot(snaps[-1], 0, 8 * CHUNK) == keep


def test_a_snapshot_goes_on_while_compaction_reads_and_writes(tmp_path: Path) -> None:
    armed, reading = threading.Event(), threading.Event()

    def slow(seconds: float) -> None:  # the pass's first read is slow, the rest are not
        if armed.is_set() and not reading.is_set():
            reading.set()
            time.sleep(2 * seconds)

    store = DelayingStore(LocalStore(tmp_path / "store"), READ_DELAY, ops=["get"], sleep=slow)
    with Engine.open(tmp_path, store=store) as engine:
        rng = np.random.default_rng(6)
        disk = engine.create_disk(8 * CHUNK).id
        engine.write(disk, 0, rng.bytes(4 * CHUNK))
        engine.create_snapshot(disk)
        for n in range(3):  # a few pages of each chunk: patches over the first versions
            engine.write_many(disk, [(c * CHUNK + n * 8192, rng.bytes(4096)) for c in range(4)])
            engine.create_snapshot(disk)
        engine.objects.forget()  # reads go to the store again
        keep = engine.read(disk, 0, 8 * CHUNK)
        done: list[CompactReport] = []
        compacting = threading.Thread(
            target=lambda: done.append(compact(engine, max_depth=0, coverage=1.0))
        )
        armed.set()
        compacting.start()
        assert reading.wait(10)
        started = time.monotonic()
        snap = engine.create_snapshot(disk)
        took = time.monotonic() - started
        still_compacting = compacting.is_alive()
        compacting.join()
        assert still_compacting, "compaction ended before the snapshot could show anything"
        assert took < READ_DELAY, f"the snapshot waited {took:.2f} s for compaction"
        assert done[0].compacted >= 1
        assert engine.read_snapshot(snap.id, 0, 8 * CHUNK) == keep
