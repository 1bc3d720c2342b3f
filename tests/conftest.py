"""SDK fixtures shared by the test directories that run a cloud per module: each directory (or
module) defines ``running`` (a ``RunningCloud``); these give its cloud.json and the unmodified
Azure SDK clients on it."""

from __future__ import annotations

from typing import Any

import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from snapferry.sdk import connect
from snapferry.testing.cloud import RunningCloud


@pytest.fixture(scope="module")
def cloud(running: RunningCloud) -> dict[str, Any]:
    return running.cloud


@pytest.fixture(scope="module")
def compute(cloud: dict[str, Any]) -> ComputeManagementClient:
    return connect(ComputeManagementClient, cloud, retry_total=0)


@pytest.fixture(scope="module")
def groups(cloud: dict[str, Any]) -> ResourceManagementClient:
    return connect(ResourceManagementClient, cloud, retry_total=0)
