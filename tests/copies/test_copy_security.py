"""Who may ask what: the peer API answers only regions holding the peer key, reads need a system
grant that users' grants and revocations never touch, the front door never exposes it; bad
CopyStart requests get a clear ARM error and create nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from snapferry.engine.delta import ChunkDelta
from snapferry.testing.cloud import RunningCloud
from snapferry.testing.copies import Family, MiB, copies, copy_body

pytestmark = pytest.mark.slow
PEER = "/snapferry/peer/v1"
NO_SOURCE = {"location": "westus", "properties": {"creationData": {"createOption": "CopyStart"}}}


def region_url(running: RunningCloud, name: str) -> str:
    port = (running.data_dir / "regions" / name / "listen-port").read_text().strip()
    return f"http://127.0.0.1:{port}"


def peer_key(running: RunningCloud) -> str:
    return (running.data_dir / "peer-key").read_text().strip()


@pytest.fixture(scope="module")
def source(compute: ComputeManagementClient, groups: ResourceManagementClient) -> str:
    groups.resource_groups.create_or_update("sec", {"location": "eastus"})
    family = Family(compute, "sec", "data", "eastus", 24 * MiB).create()
    family.write([(0, b"\x07" * MiB)])
    return family.snapshot("snap")


def post(url: str, body: Any, key: str | None, raw: bytes | None = None) -> requests.Response:
    headers = {"x-snapferry-peer-key": key} if key is not None else {}
    data = raw if raw is not None else json.dumps(body).encode()
    return requests.post(url, data=data, headers=headers, timeout=30)


def test_the_peer_api_wants_the_peer_key_and_a_system_grant(
    running: RunningCloud, compute: ComputeManagementClient, source: str
) -> None:
    east = region_url(running, "eastus")
    key = peer_key(running)
    assert oct((running.data_dir / "peer-key").stat().st_mode & 0o777) == "0o600"
    front_key = (running.data_dir / "frontdoor-key").read_text().strip()
    for bad in (None, "", "guess", front_key):
        reply = post(f"{east}{PEER}/resolve", {"resourceId": source}, bad)
        assert reply.status_code == 401, bad
        assert "snapferry" not in reply.text.lower() or "peer key" in reply.text
    found = post(f"{east}{PEER}/resolve", {"resourceId": source}, key).json()
    assert found["available"] and found["incremental"]
    engine_id, unique_id = found["engineId"], found["uniqueId"]
    piece = ChunkDelta.empty().encode()
    plan = f"{east}{PEER}/snapshots/{engine_id}/plan"
    # no grant, a forged one, a user's read SAS: all refused
    user = compute.snapshots.begin_grant_access(
        "sec", "snap", {"access": "Read", "durationInSeconds": 600}
    ).result()
    user_query = str(user.access_sas).split("?", 1)[1]
    for query in (
        "",
        "sv=2018-03-28&sr=b&si=system&sp=r&se=2099-01-01T00:00:00Z&sig=x",
        user_query,
    ):
        reply = post(f"{plan}?{query}", {"candidates": [], "full": False}, key)
        assert reply.status_code == 403, query
        assert (
            post(f"{east}{PEER}/snapshots/{engine_id}/pages?{query}", None, key, piece).status_code
            == 403
        )
    granted = post(f"{east}{PEER}/grant", {"uniqueId": unique_id}, key).json()
    sas = granted["sas"]
    assert post(f"{plan}?{sas}", {"candidates": [], "full": False}, key).status_code == 200
    # users' grants and revocations leave the system grant alone
    compute.snapshots.begin_revoke_access("sec", "snap").result()
    compute.snapshots.begin_grant_access(
        "sec", "snap", {"access": "Read", "durationInSeconds": 600}
    ).result()
    compute.snapshots.begin_revoke_access("sec", "snap").result()
    assert post(f"{plan}?{sas}", {"candidates": [], "full": False}, key).status_code == 200
    # a grant is for one snapshot only, and bad bodies are refused without a 500
    assert post(f"{east}{PEER}/grant", {"uniqueId": "nope"}, key).status_code == 404
    assert post(f"{plan}?{sas}", {"candidates": ["../x"], "full": False}, key).status_code == 400
    assert post(f"{plan}?{sas}", None, key, b"[1,2").status_code == 400
    pages = f"{east}{PEER}/snapshots/{engine_id}/pages?{sas}"
    assert post(pages, None, key, b"not a delta").status_code == 400
    assert (
        post(f"{east}{PEER}/snapshots/{'0' * 32}/plan?{sas}", {"candidates": []}, key).status_code
        == 404
    )


def test_the_front_door_never_exposes_the_peer_api(cloud: dict[str, Any], source: str) -> None:
    for path in (f"{PEER}/resolve", f"{PEER}/grant"):
        reply = requests.post(
            cloud["endpoint"] + path,
            json={"resourceId": source},
            headers={"Authorization": f"Bearer {cloud['token']}"},
            timeout=30,
        )
        assert reply.status_code in (404, 405)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {"location": "westus", "properties": {"creationData": {"createOption": "CopyStart"}}},
            "InvalidParameter",
        ),
        (copy_body("/not/an/id", "westus"), "InvalidResourceName"),
        (copy_body("SOURCE_DISK", "westus"), "InvalidParameter"),
        (copy_body("MISSING", "westus"), "ResourceNotFound"),
        (copy_body("SOURCE", "nowhere"), "LocationNotAvailableForResourceType"),
        ({**copy_body("SOURCE", "westus"), "sku": {"name": "Standard_ZRS"}}, "InvalidParameter"),
        (copy_body("SOURCE", "westus", incremental="yes"), "InvalidRequestContent"),
    ],
)
def test_bad_copy_requests_are_refused_and_create_nothing(
    compute: ComputeManagementClient,
    cloud: dict[str, Any],
    source: str,
    body: dict[str, Any],
    code: str,
) -> None:
    text = json.dumps(body)
    text = text.replace("SOURCE_DISK", compute.disks.get("sec", "data").id or "")
    text = text.replace("MISSING", source.rsplit("/", 1)[0] + "/missing")
    text = text.replace("SOURCE", source)
    with pytest.raises(HttpResponseError) as refused:
        compute.snapshots.begin_create_or_update("sec", "bad", json.loads(text)).result()
    assert refused.value.error is not None and refused.value.error.code == code
    assert "bad" not in [s.name for s in compute.snapshots.list_by_resource_group("sec")]
    assert copies(cloud) == []


def test_a_full_source_cannot_make_an_incremental_copy(
    compute: ComputeManagementClient, source: str, tmp_path: Path
) -> None:
    full = compute.snapshots.begin_create_or_update(
        "sec",
        "full",
        {
            "location": "eastus",
            "properties": {
                "creationData": {
                    "createOption": "Copy",
                    "sourceResourceId": compute.disks.get("sec", "data").id,
                },
                "incremental": False,
            },
        },
    ).result()
    with pytest.raises(HttpResponseError) as refused:
        compute.snapshots.begin_create_or_update(
            "sec", "full-west", copy_body(str(full.id), "westus", incremental=True)
        ).result()
    assert refused.value.error is not None
    assert refused.value.error.code == "InvalidParameter"
    assert "full" in str(refused.value.error.message)
