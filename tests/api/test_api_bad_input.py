"""Malformed requests get a 4xx ARM error and change nothing."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from snapferry.testing.arm import Raw
from snapferry.testing.cloud import RunningCloud

pytestmark = pytest.mark.slow
V = "?api-version=2024-03-02"


def disk(**props: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1}
    return {"location": "eastus", "properties": {**base, **props}}


CASES: list[tuple[str, str, str, Any, int, str]] = [
    # (case, method, name-or-path-suffix, body (str = raw text), status, error code)
    ("not json", "PUT", "d", "{not json", 400, "InvalidRequestContent"),
    ("array body", "PUT", "d", "[]", 400, "InvalidRequestContent"),
    ("empty body", "PUT", "d", "", 400, "InvalidRequestContent"),
    ("size as string", "PUT", "d", disk(diskSizeGB="4"), 400, "InvalidRequestContent"),
    ("size as float", "PUT", "d", disk(diskSizeGB=1.5), 400, "InvalidRequestContent"),
    ("zero size", "PUT", "d", disk(diskSizeGB=0), 400, "InvalidParameter"),
    ("negative size", "PUT", "d", disk(diskSizeGB=-1), 400, "InvalidParameter"),
    ("too big", "PUT", "d", disk(diskSizeGB=40000), 400, "InvalidParameter"),
    ("no size", "PUT", "d", disk(diskSizeGB=None), 400, "InvalidParameter"),
    ("no location", "PUT", "d", {"properties": disk()["properties"]}, 400, "InvalidRequestContent"),
    (
        "no creationData",
        "PUT",
        "d",
        {"location": "eastus", "properties": {}},
        400,
        "InvalidRequestContent",
    ),
    (
        "unknown createOption",
        "PUT",
        "d",
        disk(creationData={"createOption": "Teleport"}),
        400,
        "InvalidParameter",
    ),
    (
        "misaligned upload",
        "PUT",
        "d",
        disk(creationData={"createOption": "Upload", "uploadSizeBytes": 20972033}),
        400,
        "InvalidParameter",
    ),
    (
        "tiny upload",
        "PUT",
        "d",
        disk(creationData={"createOption": "Upload", "uploadSizeBytes": 4096}),
        400,
        "InvalidParameter",
    ),
    ("tags not strings", "PUT", "d", {**disk(), "tags": {"a": 1}}, 400, "InvalidRequestContent"),
    ("unknown zone", "PUT", "d", {**disk(), "zones": ["9"]}, 400, "InvalidParameter"),
    (
        "unknown sku",
        "PUT",
        "d",
        {**disk(), "sku": {"name": "Gold_LRS"}},
        400,
        "InvalidRequestContent",
    ),
    (
        "bad source id",
        "PUT",
        "d",
        disk(creationData={"createOption": "Copy", "sourceResourceId": "/etc/passwd"}),
        400,
        "InvalidResourceName",
    ),
    (
        "customer key",
        "PUT",
        "d",
        disk(encryption={"type": "EncryptionAtRestWithCustomerKey"}),
        400,
        "InvalidParameter",
    ),
    ("dotdot name", "PUT", "..", disk(), 404, "ResourceNotFound"),  # no such path
    ("name with space", "PUT", "a%20b", disk(), 400, "InvalidResourceName"),
    ("name with NUL", "PUT", "a%00b", disk(), 400, "InvalidResourceName"),
    ("name ends with period", "PUT", "abc.", disk(), 400, "InvalidResourceName"),
    ("long name", "PUT", "n" * 81, disk(), 400, "InvalidResourceName"),
    ("very long name", "PUT", "n" * 5000, disk(), 400, "InvalidResourceName"),
    ("encoded slash", "PUT", "a%2Fb", disk(), 404, "ResourceNotFound"),
    (
        "oversized body",
        "PUT",
        "d",
        {**disk(), "pad": "x" * (2 * 1024 * 1024)},
        413,
        "RequestEntityTooLarge",
    ),
    (
        "grant negative duration",
        "POST",
        "exists/beginGetAccess",
        {"access": "Read", "durationInSeconds": -5},
        400,
        "InvalidRequestContent",
    ),
    (
        "grant unknown access",
        "POST",
        "exists/beginGetAccess",
        {"access": "Root", "durationInSeconds": 5},
        400,
        "InvalidRequestContent",
    ),
    (
        "patch size type",
        "PATCH",
        "exists",
        {"properties": {"diskSizeGB": "big"}},
        400,
        "InvalidRequestContent",
    ),
    ("patch shrink", "PATCH", "exists", {"properties": {"diskSizeGB": 0}}, 400, "InvalidParameter"),
]


@pytest.fixture(scope="module")
def group(raw: Raw) -> str:
    assert raw("PUT", raw.rg_path("bad") + V, json={"location": "eastus"}).status_code in (200, 201)
    reply = raw("PUT", raw.item("bad", "disks", "exists") + V, json=disk())
    assert reply.status_code == 202
    return "bad"


def snapshot_of_state(raw: Raw, group: str) -> Any:
    """What a malformed request must not change: the group's disks, their sizes and states."""
    reply = raw("GET", raw.rg_path(group) + "/providers/Microsoft.Compute/disks" + V)
    assert reply.status_code == 200
    return sorted(
        (
            d["name"],
            json.dumps(d.get("tags")),
            d["properties"].get("diskSizeBytes"),
            d["properties"]["diskState"],
        )
        for d in reply.json()["value"]
    )


@pytest.mark.parametrize(
    ("method", "target", "body", "status", "code"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_malformed_requests_change_nothing(
    raw: Raw, group: str, method: str, target: str, body: Any, status: int, code: str
) -> None:
    raw("GET", raw.item(group, "disks", "exists") + V)
    before = snapshot_of_state(raw, group)
    url = raw.item(group, "disks", target) + V
    if isinstance(body, str):
        reply = raw(method, url, data=body, headers={"Content-Type": "application/json"})
    else:
        reply = raw(method, url, json=body)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert "Retry-After" not in reply.headers  # azure-core would retry a 4xx that has it
    assert snapshot_of_state(raw, group) == before


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "MissingApiVersionParameter"),
        ("?api-version=2019-07-01", "InvalidApiVersionParameter"),
        ("?api-version=latest", "InvalidApiVersionParameter"),
    ],
)
def test_api_version_is_required(raw: Raw, group: str, query: str, code: str) -> None:
    reply = raw("PUT", raw.item(group, "disks", "versioned") + query, json=disk())
    assert (reply.status_code, reply.json()["error"]["code"]) == (400, code)
    assert raw("GET", raw.item(group, "disks", "versioned") + V).status_code == 404


def test_unknown_paths_answer_arm_errors(raw: Raw) -> None:
    for path in (
        f"/subscriptions/{raw.sub}/providers/Microsoft.Compute/virtualMachines" + V,
        f"/subscriptions/{raw.sub}/resourceGroups/bad/providers/Microsoft.Compute/disks/exists/explode"
        + V,
    ):
        reply = raw("GET", path)
        assert reply.status_code == 404
        assert reply.json()["error"]["code"]


def test_links_never_follow_a_forged_host(raw: Raw, group: str) -> None:
    reply = raw(
        "PUT",
        raw.item(group, "disks", "hosted") + V,
        json=disk(),
        headers={"Host": "attacker.example"},
    )
    assert reply.status_code == 202
    for header in ("Azure-AsyncOperation", "Location"):
        assert reply.headers[header].startswith(raw.base + "/"), reply.headers[header]


def test_concurrent_group_creation_never_fails(raw: Raw) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def create(_: int) -> int:
        return raw("PUT", raw.rg_path("racing") + V, json={"location": "eastus"}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(create, range(16)))
    assert set(statuses) <= {200, 201}
    assert statuses.count(201) == 1


def test_one_resource_cannot_be_created_in_two_regions(raw: Raw, group: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def create(location: str) -> int:
        body = {**disk(), "location": location}
        return raw("PUT", raw.item(group, "disks", "twin") + V, json=body).status_code

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(create, ["eastus", "westus"]))
    assert statuses == [202, 409]
    twin = raw("GET", raw.item(group, "disks", "twin") + V).json()
    elsewhere = "westus" if twin["location"] == "eastus" else "eastus"
    other = raw("PUT", raw.item(group, "disks", "twin") + V, json={**disk(), "location": elsewhere})
    assert other.json()["error"]["code"] == "InvalidResourceLocation"


def test_no_resource_lands_in_a_group_being_deleted(raw: Raw) -> None:
    from concurrent.futures import ThreadPoolExecutor

    for attempt in range(4):
        group = f"doomed{attempt}"
        assert raw("PUT", raw.rg_path(group) + V, json={"location": "eastus"}).status_code == 201

        def put(i: int, group: str = group) -> int:
            return raw("PUT", raw.item(group, "disks", f"d{i}") + V, json=disk()).status_code

        def delete(_: int, group: str = group) -> int:
            return raw("DELETE", raw.rg_path(group) + V).status_code

        with ThreadPoolExecutor(6) as pool:
            puts = [pool.submit(put, i) for i in range(5)]
            deleted = pool.submit(delete, 0)
            statuses = [f.result() for f in puts]
        group_gone = raw("GET", raw.rg_path(group) + V).status_code == 404
        made = [s for s in statuses if s == 202]
        if group_gone:
            assert deleted.result() == 200
            assert not made  # every PUT was refused (ResourceGroupNotFound) or came first
        else:
            assert deleted.result() == 409  # refused: it held disks
        listed = raw("GET", f"/subscriptions/{raw.sub}/providers/Microsoft.Compute/disks" + V)
        assert listed.status_code == 200


def test_a_stale_index_entry_is_corrected(raw: Raw, running: RunningCloud) -> None:
    """The front door's index is a cache: when it names the wrong region, the regions are
    asked and the truth wins, for reads and for deletes."""
    reply = raw("PUT", raw.item("bad", "disks", "wanderer") + V, json=disk())
    assert reply.status_code == 202
    key = raw.item("bad", "disks", "wanderer").lower()
    index = running.data_dir / "frontdoor" / "frontdoor.db"
    with sqlite3.connect(index) as conn:
        assert conn.execute(
            "UPDATE resource_index SET region='westus' WHERE key=?", (key,)
        ).rowcount
    found = raw("GET", raw.item("bad", "disks", "wanderer") + V)
    assert (found.status_code, found.json()["location"]) == (200, "eastus")
    with sqlite3.connect(index) as conn:
        conn.execute("UPDATE resource_index SET region='westus' WHERE key=?", (key,))
    deleted = raw("DELETE", raw.item("bad", "disks", "wanderer") + V)
    assert deleted.status_code == 202
    status = deleted.headers["Azure-AsyncOperation"].split(raw.base, 1)[1]
    for _ in range(200):
        if raw("GET", status).json()["status"] != "InProgress":
            break
    assert raw("GET", raw.item("bad", "disks", "wanderer") + V).status_code == 404
