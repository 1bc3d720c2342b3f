"""Hypothesis-fuzzed ARM requests against a real ``snapferry up``: bodies shaped like a disk,
a snapshot, an update, an access grant, a resource group or a principal, whose every field may
be any JSON value (huge numbers, deep lists, wrong types, unknown options), sent by an Owner.

Whatever the body, the answer is below 500, and every 4xx is an ARM error envelope with a code
and a message. Seeded and derandomized: a CI failure replays locally."""

from __future__ import annotations

import json
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from snapferry.testing.arm import Raw

pytestmark = pytest.mark.slow
V = "?api-version=2024-03-02"
GROUP = "fuzz"

anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=24),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def some(*values: Any) -> st.SearchStrategy[Any]:
    """One of the values, or anything at all."""
    return st.sampled_from(values) | anything


creation = st.fixed_dictionaries(
    {"createOption": some("Empty", "Upload", "Copy", "CopyStart", "Import", "FromImage")},
    optional={
        "uploadSizeBytes": some(20972032, 33554432, 0, -512, 2**45),
        "sourceResourceId": some(
            "/subscriptions/x/resourceGroups/fuzz/providers/Microsoft.Compute/disks/d",
            "/subscriptions/x/resourceGroups/fuzz/providers/Microsoft.Compute/snapshots/s",
            "",
        ),
        "logicalSectorSize": some(512, 4096, 1),
        "provisionedBandwidthCopySpeed": some("None", "Enhanced"),
    },
)
properties = st.fixed_dictionaries(
    {"creationData": creation | anything},
    optional={
        "diskSizeGB": some(1, 0, -1, 32767, 2**40),
        "incremental": some(True, False),
        "encryption": some({"type": "EncryptionAtRestWithPlatformKey"}, {"type": "Nope"}),
        "networkAccessPolicy": some("AllowAll", "DenyAll"),
        "burstingEnabled": anything,
    },
)
resource = st.fixed_dictionaries(
    {"location": some("eastus", "westus", "East US", "mars", "")},
    optional={
        "properties": properties | anything,
        "sku": some({"name": "Standard_LRS"}, {"name": "UltraSSD_LRS"}, {"name": "Nope"}),
        "tags": some({"a": "b"}, {"": ""}),
        "zones": some(["1"], ["9"], []),
    },
)
update = st.fixed_dictionaries(
    {},
    optional={
        "properties": st.fixed_dictionaries(
            {}, optional={"diskSizeGB": some(2, 1, 0), "tier": anything}
        )
        | anything,
        "tags": some({"a": "b"}),
        "sku": some({"name": "Premium_LRS"}),
    },
)
grant = st.fixed_dictionaries(
    {"access": some("Read", "Write", "None")},
    optional={"durationInSeconds": some(60, 0, -1, 2**40), "getSecureVMGuestStateSAS": anything},
)
group = st.fixed_dictionaries({"location": some("eastus", "mars")}, optional={"tags": anything})
principal = st.fixed_dictionaries(
    {},
    optional={
        "subscription": anything,
        "role": some("Owner", "Reader", "God"),
        "name": anything,
        "lifetimeSeconds": some(3600, 0, 2**40),
    },
)


def item(raw: Raw, rtype: str, name: str) -> str:
    return raw.item(GROUP, rtype, name)


TARGETS: dict[str, tuple[str, Any, st.SearchStrategy[Any]]] = {
    "disk PUT": ("PUT", lambda raw: item(raw, "disks", "fd") + V, resource),
    "snapshot PUT": ("PUT", lambda raw: item(raw, "snapshots", "fs") + V, resource),
    "disk PATCH": ("PATCH", lambda raw: item(raw, "disks", "base") + V, update),
    "grant": ("POST", lambda raw: item(raw, "disks", "base") + "/beginGetAccess" + V, grant),
    "group PUT": ("PUT", lambda raw: raw.rg_path("fuzz2") + V, group),
    "principal": ("POST", lambda raw: "/snapferry/principals", principal),
}


@pytest.fixture(scope="module")
def prepared(raw: Raw) -> Raw:
    assert raw("PUT", raw.rg_path(GROUP) + V, json={"location": "eastus"}).status_code in (200, 201)
    body = {
        "location": "eastus",
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1},
    }
    assert raw("PUT", item(raw, "disks", "base") + V, json=body).status_code == 202
    return raw


@pytest.mark.parametrize("target", list(TARGETS))
def test_no_body_answers_a_5xx(prepared: Raw, target: str) -> None:
    method, path, bodies = TARGETS[target]

    @settings(
        max_examples=200,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(body=bodies)
    def check(body: Any) -> None:
        reply = prepared(
            method,
            path(prepared),
            data=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        assert reply.status_code < 500, (body, reply.text[:300])
        if reply.status_code >= 400:
            error = reply.json()["error"]
            assert error["code"] and error["message"], error

    check()
