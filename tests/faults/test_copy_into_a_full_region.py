"""A copy into a region whose storage fills up pauses — told as such by its events and by
``copy diagnose`` — and resumes by itself once space returns, fetching again at most the pieces
that were in flight when the region refused them."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from snapferry.client.diagnose import diagnose
from snapferry.engine.delta import ChunkDelta
from snapferry.meta.schema import copy_events
from snapferry.replication.peers import PageFrame, PeerClient
from snapferry.replication.transfer import PIECE_PAGES
from snapferry.settings import PAGE
from snapferry.testing.filesystems import can_mount, free_bytes, small_filesystem
from snapferry.testing.regions import InProcessRegions

pytestmark = pytest.mark.skipif(can_mount() is not None, reason=str(can_mount()))

MiB = 1024 * 1024
GiB = 1024 * MiB
EMPTY = {"properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1}}


class Counting:
    """Wraps a PeerClient, counting the pages each fetch asks for."""

    def __init__(self, inner: PeerClient) -> None:
        self.inner = inner
        self.fetched_pages = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def pages(self, region: str, engine_id: str, sas: str, piece: ChunkDelta) -> PageFrame:
        frame = await self.inner.pages(region, engine_id, sas, piece)
        self.fetched_pages += piece.changed_pages
        return frame


def wait_for(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found


def test_a_copy_pauses_while_its_region_is_full_and_resumes_when_space_returns(
    tmp_path: Path,
) -> None:
    counters: dict[str, Counting] = {}

    def wrap(name: str, peers: PeerClient) -> PeerClient:
        counters[name] = Counting(peers)
        return counters[name]

    with small_filesystem(tmp_path / "west", 64):
        regions = InProcessRegions(tmp_path, ["east", "west"], wrap=wrap)
        try:
            regions.workers["west"].ctx.pause_seconds = 0.3
            # 24 MiB of random pages, scattered so they travel as pages
            disk = regions.put("east", "disks", "g", "d", EMPTY)
            rng = np.random.default_rng(7)
            pages = 6 * 1024
            chosen = rng.choice(GiB // PAGE, pages, replace=False)
            engine_id = regions.engine_id("east", "disks", "g", "d")
            writes = [(int(p) * PAGE, rng.bytes(PAGE)) for p in chosen]
            regions.engines["east"].write_many(engine_id, writes)
            source = {
                "properties": {
                    "creationData": {"createOption": "Copy", "sourceResourceId": disk["id"]}
                }
            }
            regions.put("east", "snapshots", "g", "s", source)
            source_id = regions.wait("east", "snapshots", "g", "s")["id"]

            # leave the target room for about half of it
            ballast = tmp_path / "west" / "ballast"
            with ballast.open("wb") as f:
                f.write(bytes(free_bytes(tmp_path / "west") - 14 * MiB))
            body = {
                "properties": {
                    "creationData": {"createOption": "CopyStart", "sourceResourceId": source_id}
                }
            }
            target = str(regions.put("west", "snapshots", "g", "copied", body)["id"])

            def paused() -> dict[str, Any] | None:
                report = regions.report("west", target)
                code = (report.get("lastError") or {}).get("code")
                return report if code == "StorageFull" and report["bytesCopied"] else None

            report = wait_for("the copy to pause", paused)
            assert report["state"] in ("Queued", "Copying")
            assert 0 < report["bytesCopied"] < pages * PAGE
            with regions.engines["west"].db.connect() as conn:
                events = [
                    {"kind": row.kind, "at": row.at, "message": row.message, "details": {}}
                    for row in conn.execute(select(copy_events)).all()
                ]
            told = [e for e in events if e["kind"] == "paused"]
            assert told and "StorageFull" in told[-1]["message"]
            report = {**report, "state": "Queued"}  # as it is between attempts
            verdict = diagnose(report, events, time.time())
            assert verdict.code == "paused-storage-full" and not verdict.healthy
            assert "delete disks or snapshots" in verdict.advice

            before = counters["west"].fetched_pages
            os.unlink(ballast)  # space returns: the copy goes on by itself
            done = regions.wait("west", "snapshots", "g", "copied")
            assert done["properties"]["completionPercent"] == 100
            east = regions.engines["east"].read_snapshot(
                regions.engine_id("east", "snapshots", "g", "s"), 0, GiB
            )
            west = regions.engines["west"].read_snapshot(
                regions.engine_id("west", "snapshots", "g", "copied"), 0, GiB
            )
            assert east == west
            # every attempt refused fetches at most the pieces in flight again
            attempts = regions.report("west", target)["attempts"]
            in_flight = regions.workers["west"].ctx.streams * PIECE_PAGES
            assert counters["west"].fetched_pages <= pages + attempts * in_flight
            assert counters["west"].fetched_pages - before < pages  # it did not start over
        finally:
            regions.close()
