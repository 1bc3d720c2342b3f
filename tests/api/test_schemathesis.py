"""Schemathesis over the front door's served OpenAPI document, against a running cloud: whatever
the request (valid or not), the answer is never a 5xx, and every 4xx is an ARM error envelope
``{"error": {"code": str, "message": str}}``.

Path parameters name real things (the cloud's subscription, a group holding a disk and a
snapshot, a real operation id) in most cases and the api-version is a served one, so requests get
past routing, authorization and the version check into the handlers. Coverage-phase cases (fixed
by schemathesis, no hooks) are pinned the same way, except for the parameter the case is about.
Seeded and derandomized: a CI failure replays locally.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import hypothesis.strategies as st
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from snapferry.testing.arm import Raw

pytestmark = pytest.mark.slow

API_VERSION = "2024-03-02"
V = f"?api-version={API_VERSION}"
GROUP, DISK, SNAPSHOT, LOCATION = "fuzz", "fuzzdisk", "fuzzsnap", "eastus"

# Fuzzed cases per operation (positive and negative together), on top of the coverage phase's
# ~940 fixed ones; 25 operations: about 2,450 requests, ~22 s (~65 s on a loaded machine).
MAX_EXAMPLES = 60


def arm_error_envelope(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Every 4xx answer body is ``{"error": {"code": str, "message": str}}``."""
    if not 400 <= response.status_code < 500 or case.method.upper() == "HEAD":
        return
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{response.status_code} body is not JSON") from None
    error = body.get("error") if isinstance(body, dict) else None
    assert (
        isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and error["code"]
        and isinstance(error.get("message"), str)
    ), f"{response.status_code} body is not an ARM error envelope"


def _real_resources(raw: Raw) -> dict[str, str]:
    """Real values for the path parameters: a group holding a disk and a snapshot of it."""
    assert raw("PUT", raw.rg_path(GROUP) + V, json={"location": LOCATION}).status_code in (200, 201)
    properties = {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1}
    reply = raw(
        "PUT",
        raw.item(GROUP, "disks", DISK) + V,
        json={"location": LOCATION, "properties": properties},
    )
    assert reply.status_code == 202, reply.text
    operation = urlsplit(reply.headers["Azure-AsyncOperation"]).path.rsplit("/", 1)[1]
    source = {"createOption": "Copy", "sourceResourceId": raw.item(GROUP, "disks", DISK)}
    snapshot = {"location": LOCATION, "properties": {"creationData": source}}
    reply = raw("PUT", raw.item(GROUP, "snapshots", SNAPSHOT) + V, json=snapshot)
    assert reply.status_code == 202, reply.text
    return {
        "subscriptionId": raw.sub,
        "resourceGroupName": GROUP,
        "diskName": DISK,
        "snapshotName": SNAPSHOT,
        "location": LOCATION,
        "operationId": operation,
    }


@pytest.fixture(scope="module")
def real(raw: Raw) -> dict[str, str]:
    return _real_resources(raw)


@pytest.fixture(scope="module")
def api(cloud: dict[str, Any], real: dict[str, str]) -> schemathesis.BaseSchema:
    document = requests.get(cloud["endpoint"] + "/openapi.json", timeout=30)
    document.raise_for_status()
    config = schemathesis.Config.from_dict(
        {
            "base-url": cloud["endpoint"],
            "seed": 20240302,
            "auth": {"openapi": {"bearer": {"bearer": cloud["token"]}}},
            "generation": {"mode": "all", "database": "none"},
        }
    )
    schema = schemathesis.openapi.from_dict(document.json(), config=config)

    @schema.hook
    def flatmap_path_parameters(ctx: Any, params: Any) -> st.SearchStrategy[Any]:
        """As generated (1/4), in the cloud's subscription (1/4), or naming real things (1/2)."""
        if not isinstance(params, dict):
            return st.just(params)
        in_sub = {**params, "subscriptionId": real["subscriptionId"]}
        named = {**params, **{k: v for k, v in real.items() if k in params}}
        return st.sampled_from([named, in_sub, named, params])

    @schema.hook
    def flatmap_query(ctx: Any, query: Any) -> st.SearchStrategy[Any]:
        """A served api-version (3/4) or the generated one."""
        if not isinstance(query, dict) or "api-version" not in query:
            return st.just(query)
        served = {**query, "api-version": API_VERSION}
        return st.sampled_from([served, served, served, query])

    @schema.hook
    def flatmap_headers(ctx: Any, headers: Any) -> st.SearchStrategy[Any]:
        """Negative headers drop or mangle the token: keep that in 1/4 of them only."""
        if headers is not None and not isinstance(headers, dict):
            return st.just(headers)
        bearer = {**(headers or {}), "Authorization": f"Bearer {cloud['token']}"}
        return st.sampled_from([bearer, bearer, bearer, headers])

    return schema


def _pin_coverage_case(case: schemathesis.Case, real: dict[str, str]) -> None:
    """Coverage-phase cases skip the hooks: name real things in all but the varied parameter."""
    meta = case.meta
    if meta is None or meta.phase.name.value != "coverage":
        return
    varied = meta.phase.data.parameter
    for name in case.path_parameters:
        if name in real and name != varied:
            case.path_parameters[name] = real[name]
    if "api-version" in case.query and varied != "api-version":
        case.query["api-version"] = API_VERSION


@pytest.fixture(autouse=True)
def _pytest9_nodeid(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's from_fixture reads ``item._nodeid``, gone in pytest 9.2 (a read-only
    ``nodeid`` property now): give the item the attribute it relabels per operation."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # requests to a live server are slow, and schema-driven bodies get large or filtered
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)
def test_no_server_errors_and_arm_error_envelopes(
    case: schemathesis.Case, real: dict[str, str]
) -> None:
    _pin_coverage_case(case, real)
    case.call_and_validate(checks=[not_a_server_error, arm_error_envelope], timeout=30)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("OPTIONS", "/subscriptions/{sub}/resourceGroups/fuzz"),
        ("TRACE", "/subscriptions/{sub}/resourceGroups/fuzz/providers/Microsoft.Compute/disks/d"),
        ("GET", "/snapferry/principals"),
    ],
)
def test_unserved_methods_answer_arm_errors(raw: Raw, method: str, path: str) -> None:
    reply = raw(method, path.format(sub=raw.sub) + V)
    assert 400 <= reply.status_code < 500
    assert isinstance(reply.json().get("error"), dict), reply.text


def test_newline_in_a_compute_path_answers_an_arm_error(raw: Raw) -> None:
    reply = raw("GET", raw.item("envelopes", "disks", "a%0Ab") + V)
    assert 400 <= reply.status_code < 500
    assert isinstance(reply.json().get("error"), dict), reply.text


@pytest.fixture(scope="module")
def plain_disk(raw: Raw) -> str:
    """A disk of its own for the envelope tests (the fuzzing may delete the fuzz group's)."""
    assert raw("PUT", raw.rg_path("envelopes") + V, json={"location": LOCATION}).ok
    properties = {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1}
    disk = raw.item("envelopes", "disks", "d")
    reply = raw("PUT", disk + V, json={"location": LOCATION, "properties": properties})
    assert reply.status_code == 202, reply.text
    return disk


@pytest.mark.parametrize(
    ("method", "suffix"), [("PUT", ""), ("PATCH", ""), ("POST", "/beginGetAccess")]
)
def test_undecodable_body_answers_an_arm_error(
    raw: Raw, plain_disk: str, method: str, suffix: str
) -> None:
    headers = {"Content-Type": "application/json"}
    reply = raw(method, plain_disk + suffix + V, data=b"\xef\x08\xff", headers=headers)
    assert 400 <= reply.status_code < 500
    assert isinstance(reply.json().get("error"), dict), reply.text
