"""``/metrics`` of every region and of the front door, as cloud.json names them: Prometheus text
that prometheus-client's own parser reads, whose counters match what a copy did, and whose
labels name routes and states — never a subscription, a group or a resource."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import requests
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from prometheus_client.parser import text_string_to_metric_families

from snapferry.testing.copies import Family, MiB, copies, copy_body, wait_copied

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample at url, by name and sorted labels."""
    reply = requests.get(url, timeout=30)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of name whose labels include the given ones."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def test_metrics_count_what_a_copy_did(
    cloud: dict[str, Any], compute: ComputeManagementClient, groups: ResourceManagementClient
) -> None:
    urls = cloud["metrics"]
    assert set(urls) == {"frontdoor", "eastus", "westus", "centralus"}
    groups.resource_groups.create_or_update("metered", {"location": "eastus"})
    family = Family(compute, "metered", "meter-disk", "eastus", 32 * MiB).create()
    rng = np.random.default_rng(5)
    family.write([(0, rng.bytes(5 * MiB)), (24 * MiB, rng.bytes(MiB))])
    source = family.snapshot("meter-snap")
    before = scrape(urls["westus"])

    compute.snapshots.begin_create_or_update(
        "metered", "meter-west", copy_body(source, "westus")
    ).result()
    assert wait_copied(compute, "metered", "meter-west")[-1] == 100
    target = str(compute.snapshots.get("metered", "meter-west").id)
    (report,) = copies(cloud, target)
    after = scrape(urls["westus"])

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("snapferry_copy_copied_bytes_total") == report["bytesTotal"] == 6 * MiB
    assert grew("snapferry_copy_transferred_bytes_total") == report["bytesTransferred"] > 0
    assert grew("snapferry_copy_duration_seconds_count", result="Succeeded") == 1
    assert grew("snapferry_copies", state="Succeeded") == 1
    assert value(after, "snapferry_copies", state="Copying") == 0
    assert value(after, "snapferry_copies", state="Stalled") == 0
    assert total(after, "snapferry_peer_request_duration_seconds_count", call="grant") >= 1
    assert (
        total(after, "snapferry_peer_request_duration_seconds_count", region="eastus", outcome="ok")
        >= 3  # health checks aside: grant, plan, and the data
    )

    east = scrape(urls["eastus"])
    assert total(east, "snapferry_http_requests_total", route="blob:PutPage", status="201") >= 3
    peer_routes = {dict(labels)["route"] for (name, labels) in east if "route" in dict(labels)}
    assert "/snapferry/peer/v1/grant" in peer_routes

    front = scrape(urls["frontdoor"])
    snapshot_route = (
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
        "/providers/Microsoft.Compute/snapshots/{snapshotName}"
    )
    assert total(front, "snapferry_http_requests_total", route=snapshot_route, method="PUT") >= 2
    assert total(front, "snapferry_peer_request_duration_seconds_count", region="westus") >= 1

    for url in urls.values():  # no names, no ids, no secrets in any label
        text = requests.get(url, timeout=30).text
        for secret in (cloud["subscription"], "metered", "meter-", cloud["token"][:40]):
            assert secret not in text
