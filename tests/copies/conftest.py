"""A real cloud (``snapferry up`` in a child process, three regions, short copy leases) per
test module; ``cloud``, ``compute`` and ``groups`` come from ``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from snapferry.testing.cloud import RunningCloud
from snapferry.testing.copies import cloud_running


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    with cloud_running(tmp_path_factory.mktemp("cloud")) as cloud:
        yield cloud
