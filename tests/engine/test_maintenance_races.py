"""GC, compaction and scrub racing a region's own work: one thread writes, snapshots and
deletes snapshots (folds) while another runs maintenance passes back to back, with a grace
period of a second (what reads in flight need: a full snapshot's seal reads through a view
taken before a repack) and eager repacking and compaction. Every snapshot kept reads back exactly what the
model says, the disk too, and a final scrub is clean."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from snapferry.engine import Engine
from snapferry.engine import compact as compaction
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


def test_a_fold_between_compactions_work_and_its_commit_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compaction works out snapshot C's new map, then — before it commits — C's parent B is
    deleted and folds into C (C gains B's chunk). The commit must see the map changed and
    leave C to the next pass: C keeps B's chunk, and the next pass compacts it."""
    with Engine.open(tmp_path) as engine:
        disk = engine.create_disk(3 * CHUNK).id
        engine.write(disk, 0, b"\x01" * CHUNK * 3)
        engine.create_snapshot(disk, incremental=False)
        engine.write(disk, CHUNK, b"\x02" * PAGE)  # B changes chunk 1
        older = engine.create_snapshot(disk, incremental=True).id
        engine.write(disk, 2 * CHUNK, b"\x03" * PAGE)  # C changes chunk 2
        newest = engine.create_snapshot(disk, incremental=True).id
        want = engine.read_snapshot(newest, 0, 3 * CHUNK)

        reached, go = threading.Event(), threading.Event()
        commit = compaction._commit

        def parked(engine: Engine, node: Any, entries: Any, writer: Any) -> bool:
            if node.id == newest:
                reached.set()
                assert go.wait(30)
            return commit(engine, node, entries, writer)

        monkeypatch.setattr(compaction, "_commit", parked)
        reports: list[Any] = []
        worker = threading.Thread(
            target=lambda: reports.append(compact(engine, max_depth=0, coverage=0.0))
        )
        worker.start()
        try:
            assert reached.wait(30), "compaction never reached the newest snapshot"
            engine.delete_snapshot(older)  # folds into the newest, under compaction's feet
        finally:
            go.set()
            worker.join()
        assert engine.read_snapshot(newest, 0, 3 * CHUNK) == want
        monkeypatch.setattr(compaction, "_commit", commit)
        assert compact(engine, max_depth=0, coverage=0.0).compacted  # the next pass does it
        assert engine.read_snapshot(newest, 0, 3 * CHUNK) == want
        collect(engine, grace_seconds=0)
        assert scrub(engine).clean
        assert engine.read_snapshot(newest, 0, 3 * CHUNK) == want
