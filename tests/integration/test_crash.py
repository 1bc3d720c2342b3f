"""kill -9 at the worst moments: a region survives any crash with every acknowledged byte intact.

Each test runs ``crash_worker.py`` as a real process on a fresh data directory. The worker kills
itself with SIGKILL at a precise point — a store call of a snapshot's seal, of a fold, of a GC
repack or sweep — or the parent kills it after a random delay while it churns. The worker prints
every operation as it is acknowledged, with SHA-256 hashes computed from its own model of what it
wrote. The test then reopens the region (recovery runs in ``Engine.open``) and checks DESIGN's
invariants 1 and 2: every acknowledged snapshot reads back bit for bit, every acknowledged write is
on the disk, nothing is half-built or dangling, scrub is clean, and GC then removes all the garbage
the crash left without touching anything live.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from snapferry.engine import Engine, gc
from snapferry.engine.refs import scan
from snapferry.engine.scrub import scrub
from snapferry.errors import NotFound
from snapferry.meta import catalog

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("crash_worker.py")
KILLED = -signal.SIGKILL


# --- running the worker and reading what it acknowledged ----------------------------------------
@dataclass
class Log:
    """What the worker reported, folded into what the region must hold after a crash."""

    snapshots: dict[str, str] = field(default_factory=dict)
    """Acknowledged snapshot id → SHA-256 of its content."""
    requested: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """Disk id → hashes of every snapshot asked for (an unacknowledged one may exist)."""
    deleted: set[str] = field(default_factory=set)
    deleting: set[str] = field(default_factory=set)
    disks: dict[str, set[str]] = field(default_factory=dict)
    """Disk id → hashes its content may have: the last acknowledged, and an in-flight write's."""
    events: list[dict[str, object]] = field(default_factory=list)

    def feed(self, stdout: str) -> None:
        for line in stdout.splitlines():
            event = json.loads(line)
            self.events.append(event)
            kind = event["event"]
            if kind == "disk":
                self.disks[str(event["id"])] = {str(event["sha256"])}
            elif kind == "writing":
                self.disks[str(event["disk"])].add(str(event["sha256"]))
            elif kind == "wrote":
                self.disks[str(event["disk"])] = {str(event["sha256"])}
            elif kind == "snapshotting":
                self.requested[str(event["disk"])].add(str(event["sha256"]))
            elif kind == "snapshot":
                self.snapshots[str(event["id"])] = str(event["sha256"])
            elif kind == "deleting":
                self.deleting.add(str(event["id"]))
            elif kind == "deleted":
                self.deleting.discard(str(event["id"]))
                self.deleted.add(str(event["id"]))

    def last(self) -> str:
        return str(self.events[-1]["event"]) if self.events else "(nothing)"


def run_worker(
    data_dir: Path,
    scenario: str,
    kill: str,
    nth: int = 1,
    *,
    after: bool = False,
) -> Log:
    """Run a scenario that kills itself at the given point; what it acknowledged."""
    args = [sys.executable, str(WORKER), "--dir", str(data_dir), "--scenario", scenario]
    args += ["--kill", kill, "--nth", str(nth)] + (["--after"] if after else [])
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    log = Log()
    log.feed(proc.stdout)
    assert proc.returncode == KILLED, (
        f"worker was not killed (exit {proc.returncode}); last event {log.last()}\n{proc.stderr}"
    )
    armed = [i for i, e in enumerate(log.events) if e["event"] == "armed"]
    assert armed, "the worker died before arming its kill point"
    acknowledged = {"wrote", "snapshot", "deleted", "gc", "done"}
    assert not [e for e in log.events[armed[0] :] if e["event"] in acknowledged], (
        "the step under test was acknowledged: the kill point was never reached"
    )
    return log


# --- checking a region after a crash ------------------------------------------------------------
def content_sha(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def snapshot_sha(engine: Engine, snapshot_id: str) -> str:
    size = engine.get_snapshot(snapshot_id).size_bytes
    return content_sha(engine.iter_read_snapshot(snapshot_id, 0, size))


def disk_sha(engine: Engine, disk_id: str) -> str:
    size = engine.get_disk(disk_id).size_bytes
    return content_sha(engine.iter_read(disk_id, 0, size))


def scalar(engine: Engine, sql: str) -> int:
    with engine.db.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def check_content(engine: Engine, log: Log) -> None:
    """Acknowledged snapshots and writes are all there; anything else is a complete request."""
    visible = {s.id: s for s in engine.list_snapshots()}
    for sid, sha in log.snapshots.items():
        if sid in log.deleted:
            assert sid not in visible, f"deleted snapshot {sid} came back"
            with pytest.raises(NotFound):
                engine.get_snapshot(sid)
        elif sid in visible:
            assert snapshot_sha(engine, sid) == sha, f"snapshot {sid} changed"
        else:
            assert sid in log.deleting, f"acknowledged snapshot {sid} was lost"
    for sid, info in visible.items():
        assert info.state == "ready", f"snapshot {sid} is still {info.state} after recovery"
        if sid not in log.snapshots:
            sha = snapshot_sha(engine, sid)
            assert sha in log.requested[str(info.disk_id)], (
                f"unacknowledged snapshot {sid} holds content no snapshot request saw"
            )
    assert {d.id for d in engine.list_disks()} == set(log.disks)
    for disk_id, allowed in log.disks.items():
        assert disk_sha(engine, disk_id) in allowed, (
            f"disk {disk_id} holds neither its last acknowledged content nor the in-flight "
            f"write's ({len(allowed)} candidates)"
        )


def check_references(engine: Engine) -> None:
    """Nothing half-built, nothing dangling: every pack a map names is live and stored, and every
    head page bitmap and overlay belongs to a disk's current head generation."""
    assert scalar(engine, "SELECT count(*) FROM snapshots WHERE state = 'sealing'") == 0
    assert scalar(engine, "SELECT count(*) FROM snapshots WHERE frozen_gen IS NOT NULL") == 0
    assert (
        scalar(
            engine,
            "SELECT count(*) FROM head_pages h JOIN disks d ON d.id = h.disk_id "
            "WHERE h.gen != d.head_gen",
        )
        == 0
    )
    with engine.db.connect() as conn:
        packs = {int(p.id): p for p in catalog.all_packs(conn)}
        gens = {r.id: int(r.head_gen) for r in catalog.all_disks(conn)}
    for pack_id in np.unique(scan(engine.db).rows["pack"]).tolist():
        assert pack_id in packs, f"a block map names pack {pack_id}, which the catalog lacks"
        assert packs[pack_id].state == "live", (
            f"referenced pack {pack_id} is {packs[pack_id].state}"
        )
        assert engine.store.has(packs[pack_id].key), f"referenced pack {pack_id} is not stored"
    heads = engine.data_dir / "heads"
    for disk_dir in heads.iterdir() if heads.is_dir() else []:
        assert disk_dir.name in gens, f"overlay of deleted disk {disk_dir.name} left behind"
        stale = [g.name for g in disk_dir.iterdir() if g.name != f"gen-{gens[disk_dir.name]:06d}"]
        assert not stale, f"stale head generations {stale} of disk {disk_dir.name}"


def check_no_garbage(engine: Engine) -> None:
    """After a collection with no grace period only live packs remain, in catalog and store."""
    with engine.db.connect() as conn:
        packs = catalog.all_packs(conn)
    assert {p.state for p in packs} <= {"live"}, [(p.id, p.state) for p in packs]
    assert set(engine.store.keys("packs/")) == {p.key for p in packs}


def verify(data_dir: Path, log: Log) -> None:
    """Reopen the region and check everything; then collect and check again."""
    with Engine.open(data_dir) as engine:
        check_references(engine)
        check_content(engine, log)
        report = scrub(engine)
        assert report.clean, report.problems
        gc.collect(engine, grace_seconds=0)
        report = scrub(engine)
        assert report.clean, report.problems
        check_references(engine)
        check_no_garbage(engine)
        check_content(engine, log)
        adopt(engine, log)


def adopt(engine: Engine, log: Log) -> None:
    """Take the verified state as acknowledged, so the region can be crashed again."""
    for info in engine.list_snapshots():
        log.snapshots.setdefault(info.id, snapshot_sha(engine, info.id))
    visible = {s.id for s in engine.list_snapshots()}
    log.deleted |= log.deleting - visible
    log.deleting.clear()
    for disk_id in log.disks:
        log.disks[disk_id] = {disk_sha(engine, disk_id)}


def raw_packs(data_dir: Path) -> list[tuple[str, bool]]:
    """(state, object stored?) of every pack row, read straight from the files the crash left."""
    conn = sqlite3.connect(data_dir / "meta.db")
    try:
        rows = conn.execute("SELECT state, key FROM packs ORDER BY id").fetchall()
    finally:
        conn.close()
    return sorted((state, (data_dir / "store" / key).is_file()) for state, key in rows)


# --- precise kill points ------------------------------------------------------------------------
LIVE = ("live", True)
PENDING_EMPTY = ("pending", False)
PENDING_STORED = ("pending", True)
DEAD = ("dead", True)
DEAD_GONE = ("dead", False)

KILL_POINTS = [
    # A snapshot's seal: the pack row is pending while the pack is written, live once committed.
    pytest.param("seal", "put_if_absent", 1, False, [LIVE, PENDING_EMPTY], id="seal-put"),
    pytest.param(
        "seal", "put_if_absent", 1, True, [LIVE, PENDING_STORED], id="seal-put-durable-no-commit"
    ),
    # A seal of 72 MiB of incompressible data: two packs.
    pytest.param(
        "bigseal", "put_if_absent", 1, True, [LIVE, PENDING_STORED], id="bigseal-first-pack-durable"
    ),
    pytest.param(
        "bigseal",
        "put_if_absent",
        2,
        False,
        [LIVE, PENDING_EMPTY, PENDING_STORED],
        id="bigseal-second-put",
    ),
    pytest.param(
        "bigseal",
        "put_if_absent",
        2,
        True,
        [LIVE, PENDING_STORED, PENDING_STORED],
        id="bigseal-both-durable-no-commit",
    ),
    # Deleting a snapshot folds it into its child: read both, write merged versions, commit.
    pytest.param("fold", "get", 1, False, [LIVE] * 3, id="fold-read"),
    pytest.param("fold", "put_if_absent", 1, False, [LIVE] * 3 + [PENDING_EMPTY], id="fold-put"),
    pytest.param(
        "fold", "put_if_absent", 1, True, [LIVE] * 3 + [PENDING_STORED], id="fold-put-durable"
    ),
    # GC: repack the sparse pack (read, put, commit), then delete the two dead packs.
    pytest.param("collect", "get", 1, False, [LIVE] * 4, id="gc-repack-read"),
    pytest.param(
        "collect", "put_if_absent", 1, False, [LIVE] * 4 + [PENDING_EMPTY], id="gc-repack-put"
    ),
    pytest.param(
        "collect",
        "put_if_absent",
        1,
        True,
        [LIVE] * 4 + [PENDING_STORED],
        id="gc-repack-durable-no-commit",
    ),
    pytest.param("collect", "delete", 1, False, [DEAD, DEAD] + [LIVE] * 3, id="gc-first-delete"),
    pytest.param(
        "collect", "delete", 1, True, [DEAD_GONE, DEAD] + [LIVE] * 3, id="gc-deleted-row-kept"
    ),
    pytest.param("collect", "delete", 2, False, [DEAD] + [LIVE] * 3, id="gc-between-deletes"),
]


@pytest.mark.parametrize(("scenario", "op", "nth", "after", "packs"), KILL_POINTS)
def test_kill_at_a_store_call_loses_nothing_acknowledged(
    tmp_path: Path,
    scenario: str,
    op: str,
    nth: int,
    after: bool,
    packs: list[tuple[str, bool]],
) -> None:
    log = run_worker(tmp_path, scenario, op, nth, after=after)
    assert raw_packs(tmp_path) == sorted(packs), "the kill did not land where intended"
    verify(tmp_path, log)


@pytest.mark.parametrize(
    "nth",
    [
        pytest.param(1, id="journal-durable-before-commit"),
        pytest.param(2, id="committed-journal-applied-row-kept"),
    ],
)
def test_kill_mid_overwrite_leaves_the_old_or_the_new_content(tmp_path: Path, nth: int) -> None:
    """A write over pages an acknowledged write put in the same head generation, also covering
    pages it did not, killed once its journal and fresh pages are durable but before its page
    bitmap commits (1st sync), or after the commit once the journal was copied into place but
    before its row was dropped (2nd sync): the disk must read as before the write or after it,
    never a mix (invariant 1); recovery replays a committed journal."""
    log = run_worker(tmp_path, "tear", "overlay_sync", nth)
    verify(tmp_path, log)


def test_kill_before_a_committed_journal_is_applied_replays_it(tmp_path: Path) -> None:
    """Killed right after an overwrite's journal and bitmap committed, before the journal was
    copied into the overlay: the write was not acknowledged, and recovery must show it whole."""
    log = run_worker(tmp_path, "tear", "journal_replay")
    verify(tmp_path, log)
    with Engine.open(tmp_path) as engine:
        disk = next(iter(log.disks))
        assert disk_sha(engine, disk) == log.events[-1]["sha256"], "the committed write is lost"


def test_kill_inside_a_store_put_leaves_only_collectable_garbage(tmp_path: Path) -> None:
    """Killed inside ``LocalStore.put_if_absent`` with the pack's temp file written and fsynced but
    not linked into place: after recovery and a collection nothing of it remains."""
    log = run_worker(tmp_path, "seal", "link")
    store = tmp_path / "store"
    assert list(store.rglob(".tmp-*")), "the kill did not land inside the put"
    verify(tmp_path, log)
    leftovers = [str(p.relative_to(store)) for p in store.rglob(".tmp-*")]
    assert not leftovers, f"temp files of the killed put were never collected: {leftovers}"


# --- kills at random moments ----------------------------------------------------------------------
def test_kill_at_random_moments_while_churning(tmp_path: Path) -> None:
    """Three crashes of one region while it writes, snapshots, deletes, collects and compacts;
    after each, everything acknowledged is intact and the next process carries on."""
    log = Log()
    for cycle in range(3):
        delay = random.Random(7919 * cycle + 1).uniform(0.2, 1.5)
        args = [sys.executable, str(WORKER), "--dir", str(tmp_path), "--scenario", "churn"]
        proc = subprocess.Popen(
            [*args, "--seed", str(cycle)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            head = []
            while True:
                line = proc.stdout.readline()
                assert line, f"worker exited before it was ready: {proc.communicate()[1]}"
                head.append(line)
                if json.loads(line)["event"] == "ready":
                    break
            time.sleep(delay)
            os.kill(proc.pid, signal.SIGKILL)
            rest, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == KILLED, err
        log.feed("".join(head) + rest)
        assert len(log.events) > 5, "the worker did almost nothing before the kill"
        try:
            verify(tmp_path, log)
        except AssertionError as exc:
            raise AssertionError(f"cycle {cycle}, killed after {delay:.3f}s: {exc}") from exc
