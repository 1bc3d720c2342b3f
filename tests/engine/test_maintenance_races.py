"""GC, compaction and scrub racing a region's own work: one thread writes, snapshots and
deletes snapshots (folds) while another runs maintenance passes back to back, with a grace
period of a second (what reads in flight need: a full snapshot's seal reads through a view
taken before a repack) and eager repacking and compaction. Every snapshot kept reads back exactly what the
model says, the disk too, and a final scrub is clean."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from snapferry.engine import Engine
from snapferry.engine.compact import compact
from snapferry.engine.gc import collect
from snapferry.engine.scrub import scrub
from snapferry.settings import CHUNK, PAGE

CHUNKS = 6
ROUNDS = 40
GRACE = 1.0


def test_maintenance_racing_writes_snapshots_and_folds_loses_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    with Engine.open(tmp_path) as engine:
        disk = engine.create_disk(CHUNKS * CHUNK).id
        model = bytearray(CHUNKS * CHUNK)
        kept: dict[str, bytes] = {}
        stop = threading.Event()
        errors: list[BaseException] = []
        passes = [0]
        done = {"deleted": 0, "repacked": 0, "compacted": 0}

        def maintain() -> None:
            try:
                while not stop.is_set():
                    collected = collect(engine, grace_seconds=GRACE, repack_below=0.9)
                    done["deleted"] += collected.deleted
                    done["repacked"] += collected.repacked
                    done["compacted"] += compact(engine, max_depth=0, coverage=0.25).compacted
                    scrub(engine)
                    passes[0] += 1
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        worker = threading.Thread(target=maintain)
        worker.start()
        try:
            for n in range(10 * ROUNDS):  # at least ROUNDS, and until maintenance changed things
                if n >= ROUNDS and done["deleted"] and done["compacted"]:
                    break
                writes = []
                for _ in range(int(rng.integers(1, 6))):
                    page = int(rng.integers(0, CHUNKS * CHUNK // PAGE))
                    pages = int(rng.integers(1, 9))
                    page = min(page, CHUNKS * CHUNK // PAGE - pages)
                    data = rng.bytes(pages * PAGE)
                    writes.append((page * PAGE, data))
                    model[page * PAGE : page * PAGE + len(data)] = data
                engine.write_many(disk, writes)
                snap = engine.create_snapshot(disk, incremental=bool(n % 5)).id
                kept[snap] = bytes(model)
                if len(kept) > 4 and rng.random() < 0.6:  # fold an older one away
                    gone = list(kept)[int(rng.integers(0, len(kept) - 1))]
                    engine.delete_snapshot(gone)
                    del kept[gone]
                assert not errors, errors
        finally:
            stop.set()
            worker.join()
        assert not errors, errors
        assert passes[0] >= 2, "maintenance hardly ran: nothing was raced"
        assert done["deleted"] and done["compacted"], done  # it did change what was stored
        for snap, content in kept.items():
            assert engine.read_snapshot(snap, 0, CHUNKS * CHUNK) == content, snap
        assert engine.read(disk, 0, CHUNKS * CHUNK) == bytes(model)
        collect(engine, grace_seconds=0)
        final = scrub(engine)
        assert final.clean, final.problems
        for snap, content in kept.items():
            assert engine.read_snapshot(snap, 0, CHUNKS * CHUNK) == content, snap
