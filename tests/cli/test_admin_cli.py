"""The admin CLI as an operator runs it: a real ``snapferry`` process against a region that the
test prepares (and closes) in-process with the Engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from snapferry.engine import Engine
from snapferry.settings import CHUNK, PAGE

pytestmark = pytest.mark.slow

GC_FIELDS = {
    "data_dir",
    "grace_seconds",
    "repack_below",
    "packs",
    "live_bytes",
    "marked_dead",
    "deleted",
    "deleted_bytes",
    "repacked",
    "repacked_bytes",
    "skipped_corrupt",
}


@dataclass(frozen=True)
class Region:
    """A closed region on disk: one disk, two snapshots of it, and the bytes each holds."""

    path: Path
    disk_id: str
    first: str
    second: str
    first_chunk: bytes
    second_chunk: bytes


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The CLI's environment: no SNAPFERRY_DATA_DIR, and a private XDG_DATA_HOME so that no
    test can reach the real default region."""
    base = {k: v for k, v in os.environ.items() if k not in {"SNAPFERRY_DATA_DIR", "COLUMNS"}}
    return {**base, "XDG_DATA_HOME": str(tmp_path / "xdg"), "COLUMNS": "200"}


def make_region(path: Path) -> Region:
    """Snapshot 1 holds one random chunk at offset CHUNK; snapshot 2 patches its first page."""
    first_chunk = os.urandom(CHUNK)
    page = os.urandom(PAGE)
    with Engine.open(path) as engine:
        disk = engine.create_disk(16 * CHUNK)
        engine.write(disk.id, CHUNK, first_chunk)
        first = engine.create_snapshot(disk.id)
        engine.write(disk.id, CHUNK, page)
        second = engine.create_snapshot(disk.id)
    return Region(path, disk.id, first.id, second.id, first_chunk, page + first_chunk[PAGE:])


@pytest.fixture
def region(tmp_path: Path) -> Region:
    return make_region(tmp_path / "region")


def snapferry(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snapferry.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def json_of(proc: subprocess.CompletedProcess[str]) -> Any:
    """stdout parsed as the one JSON document it must be (json.loads refuses anything else)."""
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout)


def test_scrub_of_a_clean_region_exits_0(region: Region, env: dict[str, str]) -> None:
    proc = snapferry(env, "scrub", "--data-dir", region.path, "--output", "json")

    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no progress bar without a terminal, no warnings
    report = json_of(proc)
    assert report["clean"] is True
    assert report["problems"] == []
    assert report["packs"] == 2
    assert report["bytes_read"] > CHUNK


def test_scrub_table_says_clean(region: Region, env: dict[str, str]) -> None:
    proc = snapferry(env, "scrub", "--data-dir", region.path)

    assert proc.returncode == 0, proc.stderr
    assert "clean" in proc.stdout
    assert "objects verified" in proc.stdout


def test_scrub_finds_a_flipped_byte_and_names_snapshot_and_offset(
    region: Region, env: dict[str, str]
) -> None:
    packs = [p for p in (region.path / "store" / "packs").rglob("*") if p.is_file()]
    biggest = max(packs, key=lambda p: p.stat().st_size)  # the first snapshot's chunk
    data = bytearray(biggest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    biggest.write_bytes(data)

    proc = snapferry(env, "scrub", "--data-dir", region.path, "-o", "json")

    assert proc.returncode == 1, proc.stderr
    report = json_of(proc)
    assert report["clean"] is False
    hits = {(p["kind"], p["resource"], p["id"], p["offset"]) for p in report["problems"]}
    # The second snapshot and the disk read that chunk through the first one's version.
    assert ("corrupt", "snapshot", region.first, CHUNK) in hits
    assert ("corrupt", "snapshot", region.second, CHUNK) in hits
    assert ("corrupt", "disk", region.disk_id, CHUNK) in hits
    assert all(p["detail"] for p in report["problems"])

    table = snapferry(env, "scrub", "--data-dir", region.path)
    assert table.returncode == 1
    assert region.first in table.stdout
    assert "problem(s) found" in table.stdout


def test_repair_at_rest_refills_a_lost_zone_and_reports_lost_lrs_data(
    tmp_path: Path, env: dict[str, str]
) -> None:
    path = tmp_path / "zoned"
    with Engine.open(path, zones=("1", "2", "3")) as engine:
        disk = engine.create_disk(CHUNK).id
        engine.write(disk, 0, b"\x21" * CHUNK)
        engine.create_snapshot(disk)  # ZRS
        engine.write(disk, 0, b"\x22" * PAGE)
        engine.create_snapshot(disk, zone="3")  # LRS, in zone 3 alone
    shutil.rmtree(path / "zones" / "3")

    proc = snapferry(env, "repair", "--data-dir", path, "--output", "json")
    assert proc.returncode == 1, proc.stderr  # the LRS snapshot's pack is gone with its zone
    report = json_of(proc)
    assert report["zones"] == ["1", "2", "3"]
    assert report["copied"] == {"3": 1} and report["lost"] == {"3": 1}
    assert report["clean"] is False
    table = snapferry(env, "repair", "--data-dir", path)
    assert table.returncode == 1 and "LRS packs lost with their zone" in table.stdout
    assert "1 (zone 3: 1)" in table.stdout

    plain = snapferry(env, "repair", "--data-dir", make_region(tmp_path / "plain").path)
    assert plain.returncode == 0 and "nothing to repair" in plain.stdout, plain.stderr


def test_gc_reports_every_field_and_keeps_young_packs(region: Region, env: dict[str, str]) -> None:
    proc = snapferry(env, "gc", "--data-dir", region.path, "-o", "json")

    assert proc.returncode == 0, proc.stderr
    report = json_of(proc)
    assert set(report) == GC_FIELDS
    assert report["grace_seconds"] == 3600
    assert report["repack_below"] == 0.5
    assert report["packs"] == 2
    assert report["deleted"] == 0


def test_gc_reclaims_a_deleted_snapshot_and_the_rest_reads_back(
    region: Region, env: dict[str, str]
) -> None:
    with Engine.open(region.path) as engine:
        engine.delete_snapshot(region.first)

    proc = snapferry(env, "gc", "--data-dir", region.path, "--grace", "0", "-o", "json")

    assert proc.returncode == 0, proc.stderr
    report = json_of(proc)
    assert report["deleted"] >= 1
    assert report["deleted_bytes"] >= CHUNK // 2
    with Engine.open(region.path) as engine:
        assert engine.read_snapshot(region.second, CHUNK, CHUNK) == region.second_chunk
    assert snapferry(env, "scrub", "--data-dir", region.path).returncode == 0


def test_compact_rewrites_the_patch_and_content_is_unchanged(
    region: Region, env: dict[str, str]
) -> None:
    proc = snapferry(env, "compact", "--data-dir", region.path, "--max-depth", "0", "-o", "json")

    assert proc.returncode == 0, proc.stderr
    report = json_of(proc)
    assert report["compacted"] == 1
    assert report["max_depth"] == 0
    again = json_of(snapferry(env, "compact", "--data-dir", region.path, "-o", "json"))
    assert again["compacted"] == 0
    with Engine.open(region.path) as engine:
        assert engine.read_snapshot(region.first, CHUNK, CHUNK) == region.first_chunk
        assert engine.read_snapshot(region.second, CHUNK, CHUNK) == region.second_chunk


def test_demo_restores_a_disk_that_verifies(tmp_path: Path, env: dict[str, str]) -> None:
    proc = snapferry(env, "demo", "--data-dir", tmp_path / "demo", "-o", "json")

    assert proc.returncode == 0, proc.stderr
    result = json_of(proc)
    assert result["passed"] is True
    assert result["restore"]["verified"] is True
    assert result["restore"]["bytes_compared"] == 1024**3
    assert result["restore"]["store_bytes_added"] == 0
    assert result["diff"]["matches_writes"] is True
    assert result["diff"]["cleared_extents"] == 1
    assert result["storage"]["packs"] >= 1
    assert (tmp_path / "demo" / "meta.db").is_file()


def test_demo_refuses_an_existing_region(region: Region, env: dict[str, str]) -> None:
    proc = snapferry(env, "demo", "--data-dir", region.path)

    assert proc.returncode == 2
    assert "never runs in an existing region" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_held_region_exits_3_without_traceback(region: Region, env: dict[str, str]) -> None:
    with Engine.open(region.path):
        proc = snapferry(env, "gc", "--data-dir", region.path)
        as_json = snapferry(env, "gc", "--data-dir", region.path, "-o", "json")

    assert proc.returncode == 3
    assert "error: another process holds the region" in proc.stderr
    assert "RegionBusy" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert as_json.returncode == 3
    assert json_of(as_json)["error"]["code"] == "RegionBusy"


@pytest.mark.parametrize("command", ["scrub", "gc", "compact"])
def test_a_missing_region_exits_2_and_is_not_created(
    tmp_path: Path, env: dict[str, str], command: str
) -> None:
    missing = tmp_path / "nowhere"

    proc = snapferry(env, command, "--data-dir", missing)

    assert proc.returncode == 2
    assert f"error: no region at {missing}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not missing.exists()
    as_json = snapferry(env, command, "--data-dir", missing, "-o", "json")
    assert json_of(as_json)["error"]["code"] == "NotFound"


def test_data_dir_comes_from_env_then_region_default(tmp_path: Path, env: dict[str, str]) -> None:

    none = snapferry(env, "scrub")
    assert (
        none.returncode == 2 and "no region under" in none.stderr and "snapferry up" in none.stderr
    )
    west = make_region(tmp_path / "xdg" / "snapferry" / "regions" / "west")

    by_region = snapferry(env, "scrub", "--region", "west", "-o", "json")
    by_env = snapferry({**env, "SNAPFERRY_DATA_DIR": str(west.path)}, "scrub", "-o", "json")
    default = snapferry(env, "scrub", "-o", "json")  # the only region there

    assert json_of(by_region)["data_dir"] == str(west.path)
    assert json_of(by_env)["data_dir"] == str(west.path)
    assert json_of(default)["data_dir"] == str(west.path)
    make_region(tmp_path / "xdg" / "snapferry" / "regions" / "east")
    several = snapferry(env, "scrub")
    assert several.returncode == 2 and "--region (east, west)" in several.stderr
    missing = snapferry(env, "scrub", "--region", "north")
    assert missing.returncode == 2 and "regions/north" in missing.stderr


def test_bad_options_are_usage_errors(region: Region, env: dict[str, str]) -> None:
    proc = snapferry(env, "gc", "--data-dir", region.path, "-o", "json", "--repack-below", "2")
    bad_region = snapferry(env, "scrub", "--region", "../etc")

    assert proc.returncode == 2
    assert json_of(proc)["error"]["code"] == "UsageError"
    assert bad_region.returncode == 2
    assert "--region" in bad_region.stderr


def test_version(env: dict[str, str]) -> None:
    proc = snapferry(env, "--version")

    assert proc.returncode == 0
    assert proc.stdout.startswith("snapferry, version ")
