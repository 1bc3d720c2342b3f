"""A principal never sees, changes or infers another subscription's resources, and tokens are
checked against the registry on every call."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from snapferry.sdk import connect
from snapferry.testing.arm import Raw, make_principal

pytestmark = pytest.mark.slow
V = "?api-version=2024-03-02"


def disk_body(location: str = "eastus") -> dict[str, Any]:
    return {
        "location": location,
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1},
    }


@pytest.fixture(scope="module")
def two_tenants(cloud: dict[str, Any]) -> dict[str, Any]:
    """Subscription A with a group, a disk and a snapshot; B with its own Owner; a Reader of A."""
    sub_a, sub_b = str(uuid.uuid4()), str(uuid.uuid4())
    a = {**cloud, "token": make_principal(cloud, sub_a, "Owner"), "subscription": sub_a}
    b = {**cloud, "token": make_principal(cloud, sub_b, "Owner"), "subscription": sub_b}
    reader = {**cloud, "token": make_principal(cloud, sub_a, "reader"), "subscription": sub_a}
    connect(ResourceManagementClient, a).resource_groups.create_or_update(
        "rg", {"location": "eastus"}
    )
    connect(ResourceManagementClient, b).resource_groups.create_or_update(
        "rg", {"location": "eastus"}
    )
    compute_a = connect(ComputeManagementClient, a, retry_total=0)
    disk = compute_a.disks.begin_create_or_update("rg", "secret", disk_body()).result()
    snap = compute_a.snapshots.begin_create_or_update(
        "rg",
        "secret-snap",
        {
            "location": "eastus",
            "properties": {
                "creationData": {"createOption": "Copy", "sourceResourceId": disk.id},
                "incremental": False,
            },
        },
    ).result()
    return {"a": a, "b": b, "reader": reader, "disk": disk, "snap": snap}


def test_another_subscription_is_invisible(two_tenants: dict[str, Any]) -> None:
    a, b = two_tenants["a"], two_tenants["b"]
    as_b = Raw(b)
    missing_sub = str(uuid.uuid4())
    answers = {}
    for sub in (a["subscription"], missing_sub):
        for path in (
            as_b.item("rg", "disks", "secret", sub) + V,
            as_b.item("rg", "disks", "nothing", sub) + V,
            f"/subscriptions/{sub}/providers/Microsoft.Compute/disks" + V,
            as_b.rg_path("rg", sub) + V,
            f"/subscriptions/{sub}/resourceGroups" + V,
        ):
            reply = as_b("GET", path)
            answers[(sub, path.replace(sub, "S"))] = (
                reply.status_code,
                reply.json()["error"]["code"],
            )
    # A's real resources and a subscription that does not exist answer alike: nothing to infer.
    assert set(answers.values()) == {(403, "AuthorizationFailed")}
    own = connect(ComputeManagementClient, b, retry_total=0)
    assert [d.name for d in own.disks.list()] == []
    for method, body in (("PUT", disk_body()), ("PATCH", {"tags": {}}), ("DELETE", None)):
        reply = as_b(method, as_b.item("rg", "disks", "secret", a["subscription"]) + V, json=body)
        assert (reply.status_code, reply.json()["error"]["code"]) == (403, "AuthorizationFailed")
    reply = as_b(
        "POST",
        as_b.item("rg", "disks", "secret", a["subscription"]) + "/beginGetAccess" + V,
        json={"access": "Read", "durationInSeconds": 60},
    )
    assert reply.status_code == 403
    compute_a = connect(ComputeManagementClient, a, retry_total=0)
    assert compute_a.disks.get("rg", "secret").tags is None  # untouched


def test_copying_from_another_subscription_is_refused(two_tenants: dict[str, Any]) -> None:
    b = connect(ComputeManagementClient, two_tenants["b"], retry_total=0)
    for source in (two_tenants["snap"].id, two_tenants["snap"].id.replace("secret", "ghost")):
        with pytest.raises(HttpResponseError) as refused:
            b.disks.begin_create_or_update(
                "rg",
                "stolen",
                {
                    "location": "eastus",
                    "properties": {
                        "creationData": {"createOption": "Copy", "sourceResourceId": source}
                    },
                },
            ).result()
        assert refused.value.status_code == 403
        assert refused.value.error is not None
        assert refused.value.error.code == "LinkedAuthorizationFailed"
    assert [d.name for d in b.disks.list()] == []
    # The Python field names are not an alias of the ARM ones: no source, nothing read.
    as_b = Raw(two_tenants["b"])
    sneaky = {
        "location": "eastus",
        "properties": {
            "creation_data": {
                "createOption": "Copy",
                "source_resource_id": two_tenants["snap"].id,
            },
            "creationData": {"createOption": "Copy", "source_resource_id": two_tenants["snap"].id},
        },
    }
    reply = as_b("PUT", as_b.item("rg", "disks", "sneaky") + V, json=sneaky)
    assert reply.status_code == 400, reply.text
    assert [d.name for d in b.disks.list()] == []


def test_operation_status_is_private(two_tenants: dict[str, Any]) -> None:
    a = Raw(two_tenants["a"])
    reply = a("PUT", a.item("rg", "disks", "op-probe") + V, json=disk_body())
    assert reply.status_code == 202
    status_url = reply.headers["Azure-AsyncOperation"]
    path = status_url.split(two_tenants["a"]["endpoint"], 1)[1]
    as_b = Raw(two_tenants["b"])
    assert as_b("GET", path).status_code == 403
    elsewhere = path.replace(two_tenants["a"]["subscription"], two_tenants["b"]["subscription"])
    hidden = as_b("GET", elsewhere)
    assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "OperationNotFound")
    assert a("GET", path).json()["status"] in ("InProgress", "Succeeded")


def test_readers_read_and_nothing_more(two_tenants: dict[str, Any]) -> None:
    reader = connect(ComputeManagementClient, two_tenants["reader"], retry_total=0)
    assert reader.disks.get("rg", "secret").name == "secret"
    assert "secret" in [d.name for d in reader.disks.list_by_resource_group("rg")]
    with pytest.raises(HttpResponseError) as refused:
        reader.disks.begin_create_or_update("rg", "mine", disk_body()).result()
    assert refused.value.status_code == 403
    with pytest.raises(HttpResponseError):
        reader.disks.begin_delete("rg", "secret").result()
    assert reader.disks.get("rg", "secret").provisioning_state == "Succeeded"


def test_bad_tokens_and_disabled_principals_are_refused(cloud: dict[str, Any]) -> None:
    sub = str(uuid.uuid4())
    token = make_principal(cloud, sub, "Owner")
    path = f"/subscriptions/{sub}/providers/Microsoft.Compute/disks" + V
    assert Raw(cloud, token)(method="GET", path=path).status_code == 200
    head, payload, signature = token.split(".")
    tampered = f"{head}.{payload}.{signature[:-4]}AAAA"
    for bad in (tampered, "not-a-jwt", ""):
        reply = requests.get(
            cloud["endpoint"] + path, headers={"Authorization": f"Bearer {bad}"}, timeout=30
        )
        assert reply.status_code == 401
        assert token not in reply.text
    assert requests.get(cloud["endpoint"] + path, timeout=30).status_code == 401
    principal = requests.get(
        cloud["endpoint"] + path, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert principal.status_code == 200
    pid = _principal_id(token)
    admin = Raw(cloud)
    assert admin("POST", f"/snapferry/principals/{pid}/disable").status_code == 200
    client = connect(ComputeManagementClient, {**cloud, "token": token, "subscription": sub})
    with pytest.raises(ClientAuthenticationError):
        list(client.disks.list())
    not_admin = Raw(cloud, make_principal(cloud, sub, "Owner"))
    made = not_admin("POST", "/snapferry/principals", json={"subscription": sub, "role": "Owner"})
    assert made.status_code == 403


def _principal_id(token: str) -> str:
    import base64
    import json

    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["oid"])


def test_a_reader_cannot_collect_a_grant_result(two_tenants: dict[str, Any]) -> None:
    owner = Raw(two_tenants["a"])
    reply = owner(
        "POST",
        owner.item("rg", "disks", "secret") + "/beginGetAccess" + V,
        json={"access": "Read", "durationInSeconds": 60},
    )
    assert reply.status_code == 202
    monitor = reply.headers["Location"].split(owner.base, 1)[1]
    reader = Raw(two_tenants["reader"])
    assert reader("GET", monitor).status_code == 403
    for spelling in ("1", "yes", "on", "True"):
        assert (
            reader("GET", monitor.replace("monitor=true", f"monitor={spelling}")).status_code == 403
        )
    status = reply.headers["Azure-AsyncOperation"].split(owner.base, 1)[1]
    assert reader("GET", status).json()["status"] == "Succeeded"  # the status itself is readable
    assert "accessSAS" in owner("GET", monitor).json()
    owner("POST", owner.item("rg", "disks", "secret") + "/endGetAccess" + V)


def test_the_admin_cannot_disable_itself(cloud: dict[str, Any]) -> None:
    admin_id = _principal_id(cloud["token"])
    reply = Raw(cloud)("POST", f"/snapferry/principals/{admin_id}/disable")
    assert reply.status_code == 400
    assert Raw(cloud)("GET", f"/subscriptions/{cloud['subscription']}/resourceGroups" + V).ok
