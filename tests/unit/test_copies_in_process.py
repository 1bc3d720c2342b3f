"""Copies between regions in this process (no HTTP): a worker stopped in the middle of a copy
and a new one resuming it fetch again at most the pieces that were in flight, and faults on the
in-process peer client are retried like any others."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from snapferry.client.diagnose import diagnose
from snapferry.engine.delta import ChunkDelta
from snapferry.errors import PeerUnavailable
from snapferry.ids import new_id
from snapferry.meta import records
from snapferry.meta.schema import copy_events
from snapferry.replication.faults import Faults, FaultyPeer
from snapferry.replication.peers import PageFrame, PeerClient
from snapferry.replication.transfer import PIECE_PAGES
from snapferry.settings import PAGE
from snapferry.testing.regions import SUBSCRIPTION, InProcessRegions

GiB = 1024**3
EMPTY = {"properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1}}


class Counting:
    """Wraps a PeerClient: counts the pages each fetch asks for, and slows fetches down."""

    def __init__(self, inner: PeerClient, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.fetched_pages = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def pages(self, region: str, engine_id: str, sas: str, piece: ChunkDelta) -> PageFrame:
        await asyncio.sleep(self.delay)
        frame = await self.inner.pages(region, engine_id, sas, piece)
        self.fetched_pages += piece.changed_pages
        return frame


def snapshot_of_scattered_pages(regions: InProcessRegions, count: int, seed: int) -> str:
    """An east snapshot of a disk with ``count`` random 4 KiB pages (they travel as pages)."""
    disk = regions.put("east", "disks", "g", f"d{seed}", EMPTY)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(GiB // PAGE, count, replace=False)
    writes = [(int(p) * PAGE, rng.bytes(PAGE)) for p in chosen]
    regions.engines["east"].write_many(regions.engine_id("east", "disks", "g", f"d{seed}"), writes)
    body = {
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk["id"]}}
    }
    regions.put("east", "snapshots", "g", f"s{seed}", body)
    return str(regions.wait("east", "snapshots", "g", f"s{seed}")["id"])


def copy_start(regions: InProcessRegions, source: str, name: str) -> str:
    body = {
        "properties": {"creationData": {"createOption": "CopyStart", "sourceResourceId": source}}
    }
    return str(regions.put("west", "snapshots", "g", name, body)["id"])


def same_content(regions: InProcessRegions, source: str, target: str) -> bool:
    east = regions.engines["east"].read_snapshot(
        regions.engine_id("east", "snapshots", "g", source), 0, GiB
    )
    west = regions.engines["west"].read_snapshot(
        regions.engine_id("west", "snapshots", "g", target), 0, GiB
    )
    return east == west


def test_a_resumed_copy_fetches_again_at_most_what_was_in_flight(tmp_path: Path) -> None:
    counters: dict[str, Counting] = {}

    def wrap(name: str, peers: PeerClient) -> PeerClient:
        counters[name] = Counting(peers, delay=0.15)
        return counters[name]

    regions = InProcessRegions(tmp_path, ["east", "west"], wrap=wrap)
    try:
        pages = 12 * PIECE_PAGES
        source = snapshot_of_scattered_pages(regions, pages, seed=1)
        target = copy_start(regions, source, "copied")
        deadline = time.monotonic() + 30
        while regions.report("west", target)["bytesCopied"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        stopped = regions.workers["west"]
        stopped.stop()  # mid-copy: the pieces in flight are lost
        before = regions.report("west", target)
        assert 0 < before["bytesCopied"] < pages * PAGE
        assert before["state"] == "Queued"  # paused, not left as if still copying
        regions.start_worker("west")
        done = regions.wait("west", "snapshots", "g", "copied")
        assert done["properties"]["completionPercent"] == 100
        assert same_content(regions, "s1", "copied")
        in_flight = stopped.ctx.streams * PIECE_PAGES
        assert counters["west"].fetched_pages <= pages + in_flight
        report = regions.report("west", target)
        assert report["attempts"] == 2 and report["bytesCopied"] == pages * PAGE
        with regions.engines["west"].db.connect() as conn:
            kinds = [row.kind for row in conn.execute(select(copy_events)).all()]
        # a graceful stop is told as a pause, and the next attempt is no takeover
        assert kinds[kinds.index("paused") + 1] == "started" and "takeover" not in kinds
        assert kinds[-1] == "succeeded"
    finally:
        regions.close()


def test_in_process_faults_are_retried(tmp_path: Path) -> None:
    faults = Faults(drop=0.2, drop_after=0.1, corrupt=0.3, seed=4)
    regions = InProcessRegions(
        tmp_path, ["east", "west"], wrap=lambda _, peers: FaultyPeer(peers, faults)
    )
    try:
        source = snapshot_of_scattered_pages(regions, 3000, seed=2)
        copy_start(regions, source, "copied")
        done = regions.wait("west", "snapshots", "g", "copied")
        assert done["properties"]["completionPercent"] == 100
        assert same_content(regions, "s2", "copied")
        assert faults.injected.get("corrupt", 0) > 0 and faults.injected.get("drop", 0) > 0
    finally:
        regions.close()


def test_a_target_whose_deletion_a_crash_cut_short_leaves_no_job_behind(tmp_path: Path) -> None:
    regions = InProcessRegions(tmp_path, ["east", "west"])
    try:
        source = snapshot_of_scattered_pages(regions, 200, seed=3)
        target = copy_start(regions, source, "copied")
        regions.wait("west", "snapshots", "g", "copied")
        west = regions.services["west"]
        # the state a kill leaves in the middle of the target's deletion
        key = target.lower()
        with regions.engines["west"].db.begin() as conn:
            rec = records.get(conn, key)
            assert rec is not None
            records.put(conn, replace(rec, state="deleting"))
            op = records.Operation(
                new_id(), rec.subscription, key, "delete", "InProgress", None, None, 0.0, None
            )
            records.add_operation(conn, op)
        west.recover()
        assert west.copies.reports(SUBSCRIPTION) == []
        # the family copies again under the same name
        copy_start(regions, source, "copied")
        done = regions.wait("west", "snapshots", "g", "copied")
        assert done["properties"]["completionPercent"] == 100
        assert same_content(regions, "s3", "copied")
    finally:
        regions.close()


class Frozen:
    """Wraps a PeerClient: after the first fetch, every fetch hangs (a frozen source
    region, as SIGSTOP would make it) or fails (one that does not answer) until thawed."""

    def __init__(self, inner: PeerClient, mode: str) -> None:
        self.inner = inner
        self.mode = mode
        self.calls = 0
        self.thawed = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def _wait(self, region: str) -> None:
        self.calls += 1
        while self.calls > 1 and not self.thawed.is_set():
            if self.mode == "fail":
                raise PeerUnavailable(f"region {region} could not be reached: ConnectionRefused")
            await asyncio.sleep(0.05)

    async def pages(self, region: str, engine_id: str, sas: str, piece: ChunkDelta) -> PageFrame:
        await self._wait(region)
        return await self.inner.pages(region, engine_id, sas, piece)

    async def frames(
        self, region: str, engine_id: str, sas: str, oids: list[bytes]
    ) -> Sequence[bytes | memoryview]:
        await self._wait(region)
        return await self.inner.frames(region, engine_id, sas, oids)


@pytest.mark.parametrize(
    ("mode", "code"), [("hang", "stalled-no-progress"), ("fail", "stalled-source-unreachable")]
)
def test_a_copy_that_stops_moving_is_reported_stalled_then_moves_on(
    tmp_path: Path, mode: str, code: str
) -> None:
    frozen: dict[str, Frozen] = {}

    def wrap(name: str, peers: PeerClient) -> PeerClient:
        frozen[name] = Frozen(peers, mode)
        return frozen[name]

    regions = InProcessRegions(tmp_path, ["east", "west"], wrap=wrap)
    try:
        regions.services["west"].copies.stall_seconds = 1.0
        regions.workers["west"].stall_seconds = 1.0
        regions.workers["west"].ctx.stall_seconds = 1.0
        source = snapshot_of_scattered_pages(regions, 4 * PIECE_PAGES, seed=5)
        target = copy_start(regions, source, "copied")
        deadline = time.monotonic() + 30
        while True:  # failing fetches are retried a few times before the attempt gives up
            report = regions.report("west", target)
            if report["state"] == "Stalled" and (mode == "hang" or report["lastError"]):
                break
            assert time.monotonic() < deadline and report["state"] != "Succeeded"
            time.sleep(0.05)
        assert report["stalledSince"] is not None and report["completionPercent"] < 100
        found = diagnose(report, events_of(regions), time.time())
        assert found.code == code and not found.healthy
        deadline = time.monotonic() + 10
        while not any(e["kind"] == "stalled" for e in events_of(regions)):
            assert time.monotonic() < deadline, "no stalled event"
            time.sleep(0.05)
        frozen["west"].thawed.set()
        done = regions.wait("west", "snapshots", "g", "copied")
        assert done["properties"]["completionPercent"] == 100
        assert regions.report("west", target)["state"] == "Succeeded"
        assert same_content(regions, "s5", "copied")
        kinds = [e["kind"] for e in events_of(regions)]
        assert kinds.count("stalled") == 1  # told once per stall
        assert kinds.index("stalled") < kinds.index("moving") < kinds.index("succeeded")
    finally:
        frozen["west"].thawed.set()
        regions.close()


def events_of(regions: InProcessRegions) -> list[dict[str, Any]]:
    with regions.engines["west"].db.connect() as conn:
        return [
            {**dict(row._mapping), "details": json.loads(row.details)}
            for row in conn.execute(select(copy_events).order_by(copy_events.c.id)).all()
        ]
