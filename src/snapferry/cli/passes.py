"""Where a maintenance pass (``scrub``, ``gc``, ``compact``) runs: on the region's data
directory at rest, or — when a running cloud holds the region — by that region itself, asked
over HTTP (``api.maintenance``) with the cloud's front-door key, both found in the cloud's data
directory (``DATA_DIR/cloud.json`` and ``DATA_DIR/frontdoor-key``, the region being
``DATA_DIR/regions/NAME``). Either way the caller gets the pass's report as a dict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from snapferry.client.maintenance import Progress, ServingRegion, remote_pass
from snapferry.cloud.config import CloudConfig
from snapferry.engine import Engine
from snapferry.errors import NotFound, RegionBusy, SnapferryError
from snapferry.sdk import load_cloud

DATA_DIR_ENV = "SNAPFERRY_DATA_DIR"


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
