"""Azure's copy rules and failure semantics, on copies slowed down on purpose (every peer call of
westus and centralus waits 0.4 s, so a copy of a few dozen MiB takes seconds): one copy per
family at a time, a per-subscription limit, no access or restore before 100 %, a source deleted
mid-copy (Failed, CopySourceNotFound), a target deleted mid-copy, a failed target retried."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from snapferry.cli.copies import ended, follow
from snapferry.client import Client, OperationFailed, resolve_cloud
from snapferry.client.diagnose import diagnose
from snapferry.testing.cli import cli_env, json_of, snapferry
from snapferry.testing.cloud import RunningCloud
from snapferry.testing.copies import (
    Family,
    MiB,
    cloud_running,
    copies,
    copy_body,
    copy_events,
    sha_of_snapshot,
    wait_copied,
)

pytestmark = pytest.mark.slow
SIZE = 40 * MiB
SLOW = 'peer_faults = "delay=1.0,delay_seconds=0.4"\ncopy_streams = 1'


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    extra = SLOW + "\nmax_active_copies = 1"
    with cloud_running(
        tmp_path_factory.mktemp("cloud"), westus_extra=SLOW, centralus_extra=extra
    ) as cloud:
        yield cloud


def family_of(
    compute: ComputeManagementClient, groups: ResourceManagementClient, name: str
) -> Family:
    groups.resource_groups.create_or_update("rules", {"location": "eastus"})
    made = Family(compute, "rules", name, "eastus", SIZE).create()
    rng = np.random.default_rng(len(name))
    made.write([(0, rng.bytes(24 * MiB))])
    return made


def refusal(exc: pytest.ExceptionInfo[HttpResponseError]) -> tuple[str, str]:
    assert exc.value.error is not None
    return str(exc.value.error.code), str(exc.value.error.message)


def state_of(compute: ComputeManagementClient, name: str) -> Any:
    props = compute.snapshots.get("rules", name).properties
    assert props is not None
    return props


def test_one_copy_per_family_and_nothing_before_100_percent(
    compute: ComputeManagementClient, groups: ResourceManagementClient
) -> None:
    family = family_of(compute, groups, "one")
    first = family.snapshot("one-1")
    family.write([(30 * MiB, b"x" * MiB)])
    second = family.snapshot("one-2")
    compute.snapshots.begin_create_or_update(
        "rules", "one-1-west", copy_body(first, "westus")
    ).result()
    with pytest.raises(HttpResponseError) as busy:
        compute.snapshots.begin_create_or_update(
            "rules", "one-2-west", copy_body(second, "westus")
        ).result()
    code, message = refusal(busy)
    assert code == "OperationNotAllowed" and "one-1-west" in message
    with pytest.raises(HttpResponseError) as no_sas:
        compute.snapshots.begin_grant_access(
            "rules", "one-1-west", {"access": "Read", "durationInSeconds": 60}
        ).result()
    assert refusal(no_sas)[0] == "OperationNotAllowed"
    target = str(compute.snapshots.get("rules", "one-1-west").id)
    restore: Any = {
        "location": "westus",
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": target}},
    }
    with pytest.raises(HttpResponseError) as no_restore:
        compute.disks.begin_create_or_update("rules", "too-early", restore).result()
    assert refusal(no_restore)[0] == "OperationNotAllowed"
    seen = wait_copied(compute, "rules", "one-1-west")
    assert seen == sorted(seen) and len(seen) > 2  # progress was visible on the way
    compute.snapshots.begin_create_or_update(
        "rules", "one-2-west", copy_body(second, "westus")
    ).result()
    assert wait_copied(compute, "rules", "one-2-west")[-1] == 100
    assert sha_of_snapshot(compute, "rules", "one-2-west") == sha_of_snapshot(
        compute, "rules", "one-2"
    )


def test_the_subscription_limit_counts_copies_in_progress(
    compute: ComputeManagementClient, groups: ResourceManagementClient
) -> None:
    a = family_of(compute, groups, "limita").snapshot("limita-1")
    b = family_of(compute, groups, "limitb").snapshot("limitb-1")
    compute.snapshots.begin_create_or_update(
        "rules", "limita-c", copy_body(a, "centralus")
    ).result()
    with pytest.raises(HttpResponseError) as limited:
        compute.snapshots.begin_create_or_update(
            "rules", "limitb-c", copy_body(b, "centralus")
        ).result()
    code, message = refusal(limited)
    assert code == "OperationNotAllowed" and "1 copies are already in progress" in message
    assert wait_copied(compute, "rules", "limita-c")[-1] == 100
    compute.snapshots.begin_create_or_update(
        "rules", "limitb-c", copy_body(b, "centralus")
    ).result()
    assert wait_copied(compute, "rules", "limitb-c")[-1] == 100


def test_a_source_deleted_mid_copy_fails_the_target_which_stays_retryable_and_deletable(
    compute: ComputeManagementClient, groups: ResourceManagementClient, cloud: dict[str, Any]
) -> None:
    family = family_of(compute, groups, "gone")
    source = family.snapshot("gone-1")
    compute.snapshots.begin_create_or_update(
        "rules", "gone-west", copy_body(source, "westus")
    ).result()
    compute.snapshots.begin_delete("rules", "gone-1").result()
    seen = wait_copied(compute, "rules", "gone-west")
    props = state_of(compute, "gone-west")
    assert props.provisioning_state == "Failed"
    assert props.copy_completion_error.error_code == "CopySourceNotFound"
    assert props.completion_percent == seen[-1] < 100
    assert props.snapshot_access_state == "Pending"
    target = str(compute.snapshots.get("rules", "gone-west").id)
    told = copy_events(cloud, target)
    (failed,) = [e for e in told if e["kind"] == "failed"]
    assert failed["details"]["code"] == "CopySourceNotFound"
    found = diagnose(copies(cloud, target)[0], told, time.time())
    assert found.code == "failed-source-deleted" and not found.healthy
    assert failed["message"].startswith("failed with CopySourceNotFound for copy destination")
    # a PUT again retries; the source is still gone, so it fails again
    compute.snapshots.begin_create_or_update(
        "rules", "gone-west", copy_body(source, "westus")
    ).result()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        (report,) = copies(cloud, str(compute.snapshots.get("rules", "gone-west").id))
        if report["state"] == "Failed" and report["attempts"] >= 2:
            break
        time.sleep(0.2)
    assert report["state"] == "Failed" and report["attempts"] >= 2
    compute.snapshots.begin_delete("rules", "gone-west").result()
    assert "gone-west" not in [s.name for s in compute.snapshots.list_by_resource_group("rules")]
    kinds = [e["kind"] for e in copy_events(cloud, target)]  # kept after the target went
    assert kinds[:2] == ["accepted", "started"] and "failed" in kinds[2:-4]
    assert kinds[-4:] == ["queued", "started", "failed", "deleted"]


def test_a_target_deleted_mid_copy_stops_it(
    compute: ComputeManagementClient, groups: ResourceManagementClient, cloud: dict[str, Any]
) -> None:
    family = family_of(compute, groups, "drop")
    source = family.snapshot("drop-1")
    made = compute.snapshots.begin_create_or_update(
        "rules", "drop-west", copy_body(source, "westus")
    ).result()
    time.sleep(0.5)
    compute.snapshots.begin_delete("rules", "drop-west").result()
    assert copies(cloud, str(made.id)) == []
    deleted = copy_events(cloud, str(made.id))[-1]
    assert deleted["kind"] == "deleted" and "its copy stopped at" in deleted["message"]
    # the family copies again from scratch, and the source was never touched
    compute.snapshots.begin_create_or_update(
        "rules", "drop-west", copy_body(source, "westus")
    ).result()
    assert wait_copied(compute, "rules", "drop-west")[-1] == 100
    assert sha_of_snapshot(compute, "rules", "drop-west") == sha_of_snapshot(
        compute, "rules", "drop-1"
    )


def test_copy_wait_gives_up_at_its_timeout_saying_why_and_otherwise_waits_to_the_end(
    compute: ComputeManagementClient,
    groups: ResourceManagementClient,
    running: RunningCloud,
    tmp_path: Path,
) -> None:
    family = family_of(compute, groups, "patient")
    source = family.snapshot("patient-1")
    made = compute.snapshots.begin_create_or_update(
        "rules", "patient-west", copy_body(source, "westus")
    ).result()
    # in process, so the timeout surely falls before the copy's first slowed peer call ends
    with Client(resolve_cloud(data_dir=running.data_dir, environ={})) as client:
        early = follow(client, str(made.id), tty=False, timeout=0.1)
        assert early["state"] in ("Queued", "Copying")
        with pytest.raises(OperationFailed, match="did not finish in time") as caught:
            ended(client, early)
    assert caught.value.code in ("moving", "queued")
    env = cli_env(running, tmp_path)
    report = json_of(snapferry(running, env, "copy wait -g rules patient-west -o json"))
    assert report["state"] == "Succeeded" and report["completionPercent"] == 100
    bad = snapferry(running, env, "copy wait -g rules patient-west --timeout 0")
    assert bad.returncode == 2 and "--timeout" in bad.stderr
