"""A real cloud (``snapferry up`` in a child process, three regions, short copy leases) per
test module, driven through the unmodified Azure SDKs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from snapferry.sdk import connect
from snapferry.testing.cloud import RunningCloud
from snapferry.testing.copies import start_cloud


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    cloud = start_cloud(tmp_path_factory.mktemp("cloud"))
    try:
        yield cloud
    finally:
        cloud.kill()


@pytest.fixture(scope="module")
def cloud(running: RunningCloud) -> dict[str, Any]:
    return running.cloud


@pytest.fixture(scope="module")
def compute(cloud: dict[str, Any]) -> ComputeManagementClient:
    return connect(ComputeManagementClient, cloud, retry_total=0)


@pytest.fixture(scope="module")
def groups(cloud: dict[str, Any]) -> ResourceManagementClient:
    return connect(ResourceManagementClient, cloud, retry_total=0)
