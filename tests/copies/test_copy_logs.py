"""The log of a whole cloud run at ``debug`` in JSON lines: every line one JSON object, every
request's lines findable by the ``x-ms-request-id`` its answer carried (the front door's and
the region's alike), and not one secret issued or presented during the run in it — no token,
no SAS signature (the user's, the regions' own copy grants, forged ones), no key."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.storage.blob import BlobClient

from snapferry.sdk import connect
from snapferry.testing.arm import cloud_as, new_principal
from snapferry.testing.cloud import RunningCloud
from snapferry.testing.copies import HOUR, Family, MiB, cloud_running, copy_body, wait_copied

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    """This module's own cloud, logging everything as JSON lines."""
    path = tmp_path_factory.mktemp("logged")
    with cloud_running(path, args=("--log-format", "json", "--log-level", "debug")) as cloud:
        yield cloud


def signature(url: str) -> str:
    return parse_qs(urlsplit(url).query)["sig"][0]


def log_lines(running: RunningCloud) -> list[dict[str, Any]]:
    text = (running.data_dir / "up.log").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_failed_call_is_found_in_the_log_by_its_request_id(
    running: RunningCloud, compute: ComputeManagementClient, groups: ResourceManagementClient
) -> None:
    groups.resource_groups.create_or_update("traced", {"location": "eastus"})
    with pytest.raises(HttpResponseError) as missing:
        compute.disks.get("traced", "no-such-disk")
    assert missing.value.status_code == 404
    request_id = missing.value.response.headers["x-ms-request-id"]
    mine = [line for line in log_lines(running) if line.get("requestId") == request_id]
    routes = {line.get("route") for line in mine if "status" in line}
    disk_route = (
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
        "/providers/Microsoft.Compute/disks/{diskName}"
    )
    assert routes == {disk_route}  # the front door's line and the regions' it asked, one id
    assert len([line for line in mine if line.get("status") == 404]) >= 2
    assert any("ResourceNotFound" in line["message"] for line in mine)


def test_no_secret_issued_or_presented_reaches_the_log(
    running: RunningCloud,
    cloud: dict[str, Any],
    compute: ComputeManagementClient,
    groups: ResourceManagementClient,
) -> None:
    secrets: dict[str, str] = {"admin token": cloud["token"]}
    groups.resource_groups.create_or_update("secret", {"location": "eastus"})
    family = Family(compute, "secret", "disk", "eastus", 32 * MiB).create()

    # the user's grants: write, then read; a forged signature and a revoked grant refused
    write = compute.disks.begin_grant_access(
        "secret", "disk", {"access": "Write", "durationInSeconds": HOUR}
    ).result()
    write_url = str(write.access_sas)
    secrets["write SAS"] = signature(write_url)
    data = np.random.default_rng(3).bytes(4 * MiB)
    BlobClient.from_blob_url(write_url, retry_total=0).upload_page(data, offset=0, length=len(data))
    forged = write_url.replace(signature(write_url), "A" * len(signature(write_url)))
    assert requests.get(forged, timeout=30).status_code == 403
    compute.disks.begin_revoke_access("secret", "disk").result()
    assert requests.get(write_url, headers={"x-ms-range": "bytes=0-511"}, timeout=30).status_code
    source = family.snapshot("snap")
    read = compute.snapshots.begin_grant_access(
        "secret", "snap", {"access": "Read", "durationInSeconds": HOUR}
    ).result()
    secrets["read SAS"] = signature(str(read.access_sas))
    got = BlobClient.from_blob_url(str(read.access_sas), retry_total=0).download_blob(
        offset=0, length=len(data)
    )
    assert got.readall() == data

    # tokens: a principal's, used; a forged one and a malformed one refused
    principal_id, token = new_principal(cloud, cloud["subscription"], "Reader")
    secrets["principal token"] = token
    reader = connect(ComputeManagementClient, cloud_as(cloud, token, cloud["subscription"]))
    assert reader.snapshots.get("secret", "snap").name == "snap"
    forged_token = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    secrets["forged token"] = forged_token
    for bad in (forged_token, "not-a-jwt-" + "x" * 40):
        answer = requests.get(
            f"{cloud['endpoint']}/subscriptions/{cloud['subscription']}/resourcegroups/secret",
            params={"api-version": "2024-03-02"},
            headers={"Authorization": f"Bearer {bad}"},
            timeout=30,
        )
        assert answer.status_code == 401
    secrets["malformed token"] = "not-a-jwt-" + "x" * 40

    # a copy between regions: the regions' own grant travels in their peer calls' queries
    compute.snapshots.begin_create_or_update(
        "secret", "snap-west", copy_body(source, "westus")
    ).result()
    assert wait_copied(compute, "secret", "snap-west")[-1] == 100
    with sqlite3.connect(running.data_dir / "regions" / "westus" / "meta.db") as db:
        (access,) = db.execute("SELECT access FROM copy_jobs").fetchone()
    secrets["copy grant"] = signature("http://x/?" + json.loads(access)["sas"])
    for name in ("frontdoor-key", "peer-key"):
        secrets[name] = (running.data_dir / name).read_text().strip()

    assert running.stop() == 0  # everything flushed
    text = (running.data_dir / "up.log").read_text()
    lines = log_lines(running)  # every line is one JSON object
    assert any(line.get("route") == "blob:PutPage" for line in lines)  # debug: every request
    assert any(line.get("route", "").startswith("/snapferry/peer/v1/") for line in lines)
    assert any(line.get("status") == 403 for line in lines)
    assert principal_id  # ids are not secrets; the token is
    for what, secret in secrets.items():
        assert len(secret) >= 16, what
        for form in {secret, secret.replace("%2B", "+").replace("%2F", "/").replace("%3D", "=")}:
            assert form not in text, f"the {what} is in the log"
