"""Input an ordinary principal may send that once answered 500 or was accepted and ignored: a
``$skiptoken`` that decodes to JSON of another shape, bodies nested 100,000 deep, a re-PUT that
changes ``creationData``, token lifetimes out of range, resource groups in no region, and an
access URL naming no resource. Each answers a 4xx ARM error and changes nothing."""

from __future__ import annotations

import base64
import sqlite3
from typing import Any
from urllib.parse import parse_qs, urlsplit

import hypothesis.strategies as st
import pytest
import requests
from azure.mgmt.compute import ComputeManagementClient
from hypothesis import HealthCheck, given, settings

from snapferry.testing.arm import Raw
from snapferry.testing.cloud import RunningCloud

pytestmark = pytest.mark.slow
V = "?api-version=2024-03-02"
DEEP = "[" * 100_000 + "]" * 100_000
MiB = 1024**2


@pytest.fixture(scope="module")
def group(raw: Raw) -> str:
    assert raw("PUT", raw.rg_path("edge") + V, json={"location": "eastus"}).status_code in (
        200,
        201,
    )
    return "edge"


def token_of(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).decode().rstrip("=")


def refused(reply: requests.Response, status: int, code: str) -> None:
    assert reply.status_code == status, reply.text[:500]
    assert reply.json()["error"]["code"] == code


@pytest.mark.parametrize(
    "decoded", [b"5", b"null", b"true", b"1e999", b"[1]", b"[true, null]", b'["a", "b"]', b"{}"]
)
def test_a_skiptoken_of_another_shape_is_a_400(raw: Raw, decoded: bytes) -> None:
    for rtype in ("disks", "snapshots"):
        path = f"/subscriptions/{raw.sub}/providers/Microsoft.Compute/{rtype}"
        reply = raw("GET", f"{path}{V}&$skiptoken={token_of(decoded)}")
        assert reply.status_code == 400, (path, decoded, reply.text[:300])


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(token=st.one_of(st.text(max_size=80), st.binary(max_size=60).map(token_of)))
def test_no_skiptoken_answers_a_5xx(raw: Raw, token: str) -> None:
    reply = raw(
        "GET",
        f"/subscriptions/{raw.sub}/providers/Microsoft.Compute/snapshots{V}",
        params={"$skiptoken": token},
    )
    assert reply.status_code < 500, reply.text[:300]


def test_a_body_nested_100000_deep_is_a_400(raw: Raw, group: str, running: RunningCloud) -> None:
    headers = {"Content-Type": "application/json"}
    body = '{"location": "eastus", "properties": ' + DEEP + "}"
    refused(
        raw("PUT", raw.item(group, "disks", "deep") + V, data=body, headers=headers),
        400,
        "InvalidRequestContent",
    )
    assert raw("GET", raw.item(group, "disks", "deep") + V).status_code == 404
    assert raw("PUT", raw.rg_path("deepgroup") + V, data=DEEP, headers=headers).status_code == 400
    assert raw("GET", raw.rg_path("deepgroup") + V).status_code == 404
    before = principal_count(running)
    reply = raw("POST", "/snapferry/principals", data=DEEP, headers=headers)
    assert reply.status_code == 400 and principal_count(running) == before


def principal_count(running: RunningCloud) -> int:
    with sqlite3.connect(running.data_dir / "frontdoor" / "frontdoor.db") as db:
        return int(db.execute("SELECT count(*) FROM principals").fetchone()[0])


@pytest.mark.parametrize("lifetime", [0, -5, 10**20, 1e20, True, "3600"])
def test_a_token_lifetime_out_of_range_makes_no_principal(
    raw: Raw, running: RunningCloud, lifetime: Any
) -> None:
    before = principal_count(running)
    reply = raw(
        "POST",
        "/snapferry/principals",
        json={"subscription": raw.sub, "role": "Owner", "lifetimeSeconds": lifetime},
    )
    refused(reply, 400, "InvalidRequestContent")
    assert principal_count(running) == before


@pytest.mark.parametrize("location", ["mars", "   ", "east us 2"])
def test_a_group_in_no_region_is_refused(raw: Raw, location: str) -> None:
    reply = raw("PUT", raw.rg_path("nowhere") + V, json={"location": location})
    refused(reply, 400, "LocationNotAvailableForResourceGroup")
    assert raw("GET", raw.rg_path("nowhere") + V).status_code == 404
    made = raw("PUT", raw.rg_path("somewhere") + V, json={"location": "East US"})
    assert made.status_code in (200, 201) and made.json()["location"] == "eastus"


def upload(size: int, **more: Any) -> dict[str, Any]:
    creation = {"createOption": "Upload", "uploadSizeBytes": size, **more}
    return {"location": "eastus", "properties": {"creationData": creation}}


def test_a_re_put_that_changes_creation_data_is_a_409(raw: Raw, group: str) -> None:
    url = raw.item(group, "disks", "fixed") + V
    made = raw("PUT", url, json=upload(32 * MiB))
    assert made.status_code == 202
    before = raw("GET", url).json()
    for changed in (upload(64 * MiB), upload(32 * MiB, logicalSectorSize=4096)):
        refused(raw("PUT", url, json=changed), 409, "PropertyChangeNotAllowed")
    assert raw("GET", url).json() == before
    assert raw("PUT", url, json=upload(32 * MiB, tags=None)).status_code == 202  # the same
    sector = raw.item(group, "disks", "sectors") + V
    assert raw("PUT", sector, json=upload(32 * MiB, logicalSectorSize=4096)).status_code == 202
    kept = raw("GET", sector).json()["properties"]["creationData"]
    assert kept["logicalSectorSize"] == 4096  # kept as asked, so a re-PUT may repeat it
    assert raw("PUT", sector, json=upload(32 * MiB, logicalSectorSize=4096)).status_code == 202
    refused(
        raw("PUT", sector, json=upload(32 * MiB, logicalSectorSize=512)),
        409,
        "PropertyChangeNotAllowed",
    )


def test_an_access_url_gets_one_refusal_whatever_it_names(
    raw: Raw, group: str, compute: ComputeManagementClient
) -> None:
    assert raw("PUT", raw.item(group, "disks", "granted") + V, json=upload(32 * MiB)).status_code
    grant = {"access": "Write", "durationInSeconds": 600}
    sas = str(compute.disks.begin_grant_access(group, "granted", grant).result().access_sas)
    parts = urlsplit(sas)
    query = parse_qs(parts.query)
    forged_sig = sas.replace(query["sig"][0], "A" * len(query["sig"][0]))
    engine_id = parts.path.rsplit("/", 2)[-2]
    unknown = sas.replace(engine_id, "0" * len(engine_id))
    answers = []
    for bad in (forged_sig, unknown):
        reply = requests.get(bad, headers={"x-ms-range": "bytes=0-511"}, timeout=30)
        answers.append((reply.status_code, reply.headers.get("x-ms-error-code"), reply.text))
    assert answers[0] == answers[1] and answers[0][0] == 403
