"""A serving region runs its maintenance on schedule (``scrub_hours``, ``gc_hours``,
``compact_hours``) while it serves: each pass records when it ended in ``<pass>.json``; a clean
region shows no scrub problem in its metrics, and a byte flipped in a stored pack is found by
the next scrub, named in the log and counted in ``snapferry_scrub_problems``. In a region with
zones the scheduled zone repair refills a lost zone, and a scrub mends a damaged zone copy."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import requests
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from snapferry.sdk import connect
from snapferry.testing.arm import disk_and_snapshot
from snapferry.testing.cloud import RunningCloud

CONFIG = """
[[regions]]
name = "eastus"
upkeep_seconds = 0.2
scrub_hours = 0.0005
gc_hours = 0.0005
compact_hours = 0.0005

[[regions]]
name = "westus"
scrub_hours = 0
gc_hours = 0
compact_hours = 0
"""


def scrub_metrics(cloud: RunningCloud) -> dict[str, float]:
    text = requests.get(cloud.cloud["metrics"]["eastus"], timeout=10).text
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("snapferry_scrub_")
    }


def wait_for_scrub(cloud: RunningCloud, after: float) -> dict[str, float]:
    deadline = time.monotonic() + 60
    while True:
        found = scrub_metrics(cloud)
        if found.get("snapferry_scrub_last_end_timestamp_seconds", 0) > after:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.2)


def test_a_serving_region_maintains_itself_on_schedule_and_names_damage(tmp_path: Path) -> None:
    cloud = RunningCloud.start(tmp_path / "cloud", config_text=CONFIG)
    try:
        connect(ResourceManagementClient, cloud.cloud).resource_groups.create_or_update(
            "g", {"location": "eastus"}
        )
        compute = connect(ComputeManagementClient, cloud.cloud)
        disk_and_snapshot(compute, "g", bytes(range(256)) * 256)

        clean = wait_for_scrub(cloud, time.time())
        assert clean["snapferry_scrub_problems"] == 0
        assert clean["snapferry_scrub_bytes_read"] > 0
        region = cloud.data_dir / "regions" / "eastus"
        for name in ("gc", "compact"):
            deadline = time.monotonic() + 30
            while "lastEndedAt" not in (state := json.loads((region / f"{name}.json").read_text())):
                assert time.monotonic() < deadline, state
                time.sleep(0.1)
            assert state["lastEndedAt"] >= state["lastStartedAt"], state
        assert not (cloud.data_dir / "regions" / "westus" / "scrub.json").exists()  # 0: never

        (pack,) = [
            p for p in (cloud.data_dir / "regions" / "eastus" / "store").rglob("*") if p.is_file()
        ]
        damaged = bytearray(pack.read_bytes())
        damaged[len(damaged) // 2] ^= 0xFF
        pack.write_bytes(bytes(damaged))
        found = wait_for_scrub(cloud, time.time())
        assert found["snapferry_scrub_problems"] >= 1
        log = (cloud.data_dir / "up.log").read_text(errors="replace")
        assert "scrub: corrupt" in log and "Traceback" not in log
    finally:
        cloud.kill()


ZONED = """
[[regions]]
name = "eastus"
zones = ["1", "2", "3"]
upkeep_seconds = 0.2
scrub_hours = 0.0005
repair_hours = 0.0005
gc_hours = 0
compact_hours = 0

[[regions]]
name = "westus"
scrub_hours = 0
"""


def metrics(cloud: RunningCloud, prefix: str) -> dict[str, float]:
    text = requests.get(cloud.cloud["metrics"]["eastus"], timeout=10).text
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


def test_a_serving_region_refills_a_lost_zone_and_mends_a_damaged_one_by_itself(
    tmp_path: Path,
) -> None:
    cloud = RunningCloud.start(tmp_path / "cloud", config_text=ZONED)
    try:
        connect(ResourceManagementClient, cloud.cloud).resource_groups.create_or_update(
            "g", {"location": "eastus"}
        )
        disk_and_snapshot(connect(ComputeManagementClient, cloud.cloud), "g", b"\x42" * 65536)
        zones = cloud.data_dir / "regions" / "eastus" / "zones"
        whole = sorted(p.relative_to(zones / "1") for p in (zones / "1").rglob("*") if p.is_file())
        assert whole

        started = time.time()
        shutil.rmtree(zones / "2")
        deadline = time.monotonic() + 60
        while True:  # the next scheduled repair brings it back
            found = metrics(cloud, "snapferry_zone_repair_")
            ended = found.get("snapferry_zone_repair_last_end_timestamp_seconds", 0)
            if ended > started and found["snapferry_zone_repair_copied_packs"] >= len(whole):
                break
            assert time.monotonic() < deadline, found
            time.sleep(0.2)
        refilled = sorted(
            p.relative_to(zones / "2") for p in (zones / "2").rglob("*") if p.is_file()
        )
        assert refilled == whole
        assert found["snapferry_zone_repair_lost_packs"] == 0

        victim = zones / "3" / whole[0]
        damaged = bytearray(victim.read_bytes())
        damaged[len(damaged) // 2] ^= 0xFF
        victim.write_bytes(bytes(damaged))
        scrubbed = wait_for_scrub(cloud, time.time())
        assert scrubbed["snapferry_scrub_problems"] == 0  # another zone's copy verified
        assert scrubbed["snapferry_scrub_zone_damage"] >= 1
        assert victim.read_bytes() == (zones / "1" / whole[0]).read_bytes()  # mended
        log = (cloud.data_dir / "up.log").read_text(errors="replace")
        assert "Traceback" not in log
    finally:
        cloud.kill()
