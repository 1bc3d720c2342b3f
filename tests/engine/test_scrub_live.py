"""Scrub in a serving region: it holds the engine lock only to take and recheck references, so
snapshots and writes go on while it reads packs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from snapferry.engine import Engine
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
