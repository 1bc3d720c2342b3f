"""A real cloud (``snapferry up`` in a child process) per test module, driven through the
unmodified Azure SDKs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from snapferry.testing.arm import Raw
from snapferry.testing.cloud import RunningCloud

API = "api-version=2024-03-02"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    cloud = RunningCloud.start(tmp_path_factory.mktemp("cloud"), page_size=3)
    try:
        yield cloud
    finally:
        cloud.kill()


@pytest.fixture(scope="module")
def raw(cloud: dict[str, Any]) -> Raw:
    return Raw(cloud)
