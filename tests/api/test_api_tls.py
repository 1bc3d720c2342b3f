"""The front door serves HTTPS with a certificate authority the cloud generates: the SDK trusts
it through cloud.json's ``ca`` (the Azure CLI needs HTTPS)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from snapferry.sdk import connect
from snapferry.testing.cloud import RunningCloud

pytestmark = pytest.mark.slow


def test_sdk_over_https_with_the_generated_ca(tmp_path: Path) -> None:
    running = RunningCloud.start(tmp_path / "cloud", tls=True)
    try:
        cloud = running.cloud
        assert cloud["endpoint"].startswith("https://127.0.0.1:")
        assert Path(cloud["ca"]).is_file()
        connect(ResourceManagementClient, cloud).resource_groups.create_or_update(
            "secure", {"location": "westus"}
        )
        compute = connect(ComputeManagementClient, cloud, retry_total=0)
        disk = compute.disks.begin_create_or_update(
            "secure",
            "d",
            {
                "location": "westus",
                "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1},
            },
        ).result()
        assert disk.provisioning_state == "Succeeded"
        localhost = cloud["endpoint"].replace("127.0.0.1", "localhost")
        via_name = connect(ComputeManagementClient, {**cloud, "endpoint": localhost})
        assert via_name.disks.get("secure", "d").name == "d"
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(cloud["endpoint"] + "/snapferry/health", timeout=10)
        plain = cloud["endpoint"].replace("https://", "http://")
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(plain + "/snapferry/health", timeout=10)
    finally:
        running.kill()
