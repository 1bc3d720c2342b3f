"""Maintenance in a serving region: scrub holds the engine lock only to take and recheck
references, GC only for metadata, compaction only to commit each snapshot's new map, so
snapshots and writes go on while they read, copy, write and delete packs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from snapferry.engine import Engine
from snapferry.engine.compact import compact
from snapferry.engine.gc import collect
from snapferry.engine.scrub import scrub
from snapferry.settings import CHUNK
from snapferry.store import DelayingStore, LocalStore

READ_DELAY = 0.4
T = TypeVar("T")


def meanwhile(
    what: str, work: Callable[[], T], busy: threading.Event, step: Callable[[], None]
) -> T:
    """Run work in a thread; once ``busy`` says it is reading or deleting, run step here and
    assert that step did not wait for work (it ended while work still ran, within
    ``READ_DELAY``). What work returned."""
    done: list[T] = []
    running = threading.Thread(target=lambda: done.append(work()))
    running.start()
    assert busy.wait(10)
    started = time.monotonic()
    step()
    took = time.monotonic() - started
    still_running = running.is_alive()
    running.join()
    assert still_running, f"{what} ended before the step could show anything"
    assert took < READ_DELAY, f"the step waited {took:.2f} s for {what}"
    return done[0]


def test_a_snapshot_and_writes_go_on_while_scrub_reads(tmp_path: Path) -> None:
    store = DelayingStore(LocalStore(tmp_path / "store"), READ_DELAY, ops=["get"])
    with Engine.open(tmp_path, store=store) as engine:
        rng = np.random.default_rng(3)
        disk = engine.create_disk(8 * CHUNK).id
        for round_ in range(3):  # three snapshots, three packs: scrub reads for > 1 s
            engine.write(disk, round_ * CHUNK, rng.bytes(CHUNK))
            engine.create_snapshot(disk)
        reading = threading.Event()
        snaps: list[str] = []

        def write_and_snapshot() -> None:
            engine.write(disk, 5 * CHUNK, rng.bytes(CHUNK))
            snaps.append(engine.create_snapshot(disk).id)

        report = meanwhile(
            "the scrub",
            lambda: scrub(engine, progress=lambda n, total: reading.set()),
            reading,
            write_and_snapshot,
        )
        assert report.clean and report.packs == 3
        assert engine.get_snapshot(snaps[0]).state == "ready"


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
        made: list[str] = []
        report = meanwhile(
            "gc",
            lambda: collect(engine, grace_seconds=0, repack_below=0),
            deleting,
            lambda: made.append(engine.create_snapshot(disk).id),
        )
        assert report.deleted >= 1
        assert engine.read_snapshot(made[0], 0, 8 * CHUNK) == keep
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
        made: list[str] = []
        armed.set()
        report = meanwhile(
            "compaction",
            lambda: compact(engine, max_depth=0, coverage=1.0),
            reading,
            lambda: made.append(engine.create_snapshot(disk).id),
        )
        assert report.compacted >= 1
        assert engine.read_snapshot(made[0], 0, 8 * CHUNK) == keep
