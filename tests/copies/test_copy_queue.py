"""Copies queued while every copy worker slot of the target region is busy (westus runs one copy
at a time, held at a gate until the test has looked, then slowed down on purpose: about six
seconds): the later copy is Queued behind the running one, diagnosed ``queued`` with how many are
ahead, and runs by itself when the slot frees; ``copy wait`` draws a bar on a terminal and writes
plain lines to a pipe."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from snapferry.testing.cli import cli_env, snapferry
from snapferry.testing.cloud import RunningCloud
from snapferry.testing.copies import Family, MiB, cloud_running, copy_body, wait_copied
from snapferry.testing.terminal import in_a_terminal

pytestmark = pytest.mark.slow
CLI = (sys.executable, "-m", "snapferry.cli.main")
ONE_AT_A_TIME = (
    'copy_jobs = 1\ncopy_streams = 1\npeer_faults = "delay=1.0,delay_seconds=0.6,gate={}"'
)


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """While this file exists, westus's copies wait before each call to their source."""
    held = tmp_path_factory.mktemp("gate") / "hold"
    held.touch()
    return held


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, gate: Path) -> Iterator[RunningCloud]:
    extra = ONE_AT_A_TIME.format(gate)
    with cloud_running(tmp_path_factory.mktemp("cloud"), westus_extra=extra) as cloud:
        yield cloud


def test_a_copy_waits_for_a_free_worker_and_says_so(
    running: RunningCloud,
    gate: Path,
    compute: ComputeManagementClient,
    groups: ResourceManagementClient,
) -> None:
    groups.resource_groups.create_or_update("queue", {"location": "eastus"})
    sources = []
    for name, size in (("first", 64 * MiB), ("second", 8 * MiB)):  # two families: no rule
        family = Family(compute, "queue", name, "eastus", 64 * MiB).create()
        family.write([(0, np.random.default_rng(len(name)).bytes(size))])
        sources.append(family.snapshot(f"{name}-snap"))
    for name, source in zip(("first", "second"), sources, strict=True):
        compute.snapshots.begin_create_or_update(
            "queue", f"{name}-west", copy_body(source, "westus")
        ).result()
    second = str(compute.snapshots.get("queue", "second-west").id)
    env = cli_env(running, running.data_dir / "scratch")
    followed_from = time.time()
    following = subprocess.Popen(  # live, while the first copy moves; it ends with the copy
        [*CLI, "copy", "events", "-g", "queue", "first-west", "--follow", "-o", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )

    told = snapferry(running, env, f"copy diagnose {second} -o json")
    found = json.loads(told.stdout)
    assert told.returncode == 0, told.stderr
    assert found["diagnosis"] == "queued" and found["state"] == "Queued"
    assert found["queuedBehind"] == 1 and found["attempts"] == 0
    assert "1 copy into westus accepted before it" in found["summary"]
    plain = snapferry(running, env, f"copy diagnose {second}")
    assert plain.returncode == 0 and "waiting for a copy worker" in plain.stdout

    # both waited for, the first on a terminal (a live bar), the second piped (plain lines); the
    # gate opens once both have said where their copy stands
    first = str(compute.snapshots.get("queue", "first-west").id)
    drawn = threading.Event()
    on_tty = in_a_terminal(env, ["copy", "wait", first, "--timeout", "120"], drawn=drawn)
    piped = subprocess.Popen(
        [*CLI, "copy", "wait", second, "--timeout", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert piped.stderr is not None
        lines = [piped.stderr.readline().rstrip("\n")]
        assert drawn.wait(60)
        gate.unlink()
        lines += piped.stderr.read().splitlines()
        assert piped.wait(timeout=150) == 0, lines
    finally:
        piped.kill()
        piped.communicate()
    assert lines[-1] == "copy succeeded: 100 %" and "\x1b" not in "".join(lines)
    assert lines[0].startswith("copy queued: 0 %"), lines
    status, screen = on_tty.result(timeout=200)
    assert status == 0, screen
    assert "copying" in screen and "%" in screen and "\x1b[" in screen  # a drawn, redrawn bar
    assert wait_copied(compute, "queue", "second-west")[-1] == 100
    try:
        out, err = following.communicate(timeout=60)
    finally:
        following.kill()
        following.communicate()
    assert following.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds[:3] == ["accepted", "started", "planned"] and kinds[-1] == "succeeded"
    assert "progress" in kinds and events[-1]["at"] > followed_from
    moments = [e["at"] for e in events if e["kind"] == "progress"]
    assert all(5.0 <= b - a <= 8.0 for a, b in itertools.pairwise(moments))
    assert events[-1]["at"] - moments[-1] <= 8.0  # no long silence before the end
    deadline = time.monotonic() + 30
    found = {}
    while time.monotonic() < deadline:
        found = json.loads(snapferry(running, env, f"copy show {second} -o json").stdout)
        if found["state"] == "Succeeded":
            break
        time.sleep(0.2)
    assert found["state"] == "Succeeded" and found["queuedBehind"] == 0
    first = json.loads(snapferry(running, env, "copy list -o json").stdout)["value"]
    by_name = {r["target"].rsplit("/", 1)[1]: r for r in first}
    # one slot: the second started only once the first had ended
    assert by_name["second-west"]["startedAt"] >= by_name["first-west"]["endedAt"]
