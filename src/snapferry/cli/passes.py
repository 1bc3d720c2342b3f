"""Where a maintenance pass (``scrub``, ``gc``, ``compact``) runs: on the region's data
directory at rest, or — when a running cloud holds the region — by that region itself, asked
over HTTP (``api.maintenance``) with the cloud's front-door key, both found in the cloud's data
directory (``DATA_DIR/cloud.json`` and ``DATA_DIR/frontdoor-key``, the region being
``DATA_DIR/regions/NAME``). Either way the caller gets the pass's report as a dict.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from snapferry.api.common import KEY_HEADER
from snapferry.cloud.config import CloudConfig
from snapferry.engine import Engine
from snapferry.errors import InvalidInput, NotFound, PeerUnavailable, RegionBusy, SnapferryError
from snapferry.sdk import load_cloud

Progress = Callable[[int, int], None]
DATA_DIR_ENV = "SNAPFERRY_DATA_DIR"


@dataclass(frozen=True)
class ServingRegion:
    """A region a running cloud serves: its URL and the key its front door presents."""

    url: str
    key: str


def run_pass(
    path: Path,
    task: str,
    params: dict[str, str],
    local: Callable[[Engine, Progress | None], dict[str, Any]],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``local(engine, progress)`` on the region at path, or the same pass by the running
    region that holds it. RegionBusy if another process holds it and no running cloud of this
    data directory serves it."""
    try:
        with open_region(path) as engine:
            return local(engine, progress)
    except RegionBusy:
        served = serving_region(path)
        if served is None:
            raise
        return remote_pass(served, task, params, progress)


@contextmanager
def open_region(data_dir: Path) -> Iterator[Engine]:
    """The Engine of an existing region at data_dir: NotFound if there is no region there
    (never creates one) and RegionBusy if another process holds it."""
    if not (data_dir / "meta.db").is_file():
        raise NotFound(
            f"no region at {data_dir} (no meta.db there); pass --data-dir or set {DATA_DIR_ENV}",
            data_dir=str(data_dir),
        )
    engine = Engine.open(data_dir)
    try:
        yield engine
    finally:
        engine.close()


def serving_region(path: Path) -> ServingRegion | None:
    """The running region of the cloud whose data directory holds path, if it can be found."""
    if path.parent.name != "regions":
        return None
    home = path.parent.parent
    try:
        metrics = str(load_cloud(home / "cloud.json")["metrics"][path.name])
        key = CloudConfig(data_dir=home).frontdoor_key_file.read_text().strip()
    except (SnapferryError, OSError, KeyError, TypeError):
        return None
    return ServingRegion(metrics.removesuffix("/metrics"), key)


def remote_pass(
    served: ServingRegion, task: str, params: dict[str, str], progress: Progress | None
) -> dict[str, Any]:
    """The pass run by the serving region, its progress told as the region streams it."""
    url = f"{served.url}/snapferry/maintenance/v1/{task}"
    try:
        with requests.post(
            url, params=params, headers={KEY_HEADER: served.key}, stream=True, timeout=(10, None)
        ) as reply:
            if reply.status_code == 400:
                raise InvalidInput(_message(reply))
            if reply.status_code != 200:
                raise PeerUnavailable(
                    f"the running region refused the {task} ({reply.status_code}): "
                    f"{reply.text[:300]}"
                )
            for raw in reply.iter_lines():
                line = json.loads(raw) if raw else {}
                if "progress" in line and progress is not None:
                    progress(*line["progress"])
                elif "result" in line:
                    return dict(line["result"])
                elif "error" in line:
                    failed = SnapferryError(str(line["error"]["message"]))
                    failed.code = str(line["error"]["code"])
                    raise failed
    except requests.RequestException as exc:
        raise PeerUnavailable(f"the running region did not answer the {task}: {exc}") from None
    raise PeerUnavailable(f"the running region stopped answering the {task} before its end")


def _message(reply: requests.Response) -> str:
    """The message of an ARM error envelope, or the body's start."""
    try:
        return str(reply.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return reply.text[:300]
