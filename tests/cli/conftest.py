"""Fixtures shared by the CLI modules that run against a real cloud: each module defines its
own ``cloud`` (a ``RunningCloud``), and these build on it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapferry.client import Client, resolve_cloud
from snapferry.testing.cli import cli_env
from snapferry.testing.cloud import RunningCloud

_names = itertools.count()


@pytest.fixture(scope="module")
def client(cloud: RunningCloud) -> Iterator[Client]:
    """An in-process client of the module's cloud, for setup that is not under test."""
    with Client(resolve_cloud(data_dir=cloud.data_dir, environ={})) as made:
        yield made


@pytest.fixture
def env(cloud: RunningCloud, tmp_path: Path) -> dict[str, str]:
    return cli_env(cloud, tmp_path)


@pytest.fixture
def group(client: Client) -> str:
    """A new, empty resource group in eastus."""
    name = f"rg{next(_names)}"
    client.create_group(name, "eastus")
    return name
