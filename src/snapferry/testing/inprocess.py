"""A whole cloud (front door and regions, as ``snapferry up`` runs them) served by threads of
the test's own process, for tests that reach into it while it serves: fault injectors hooked
on its databases, its engines' files."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from snapferry.cloud import host
from snapferry.cloud.config import load


@contextmanager
def cloud_in_this_process(data_dir: Path, config_text: str) -> Iterator[dict[str, Any]]:
    """Serve the cloud ``config_text`` describes from ``data_dir`` on free loopback ports;
    its cloud.json's content while it serves, then a graceful stop."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "cloud.toml"
    path.write_text(config_text)
    config = load(path, data_dir=data_dir, port=0)
    hosted = host.Hosted()
    cloud: dict[str, Any] = {}
    serving = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(host.serve(hosted, ready, config.http))
        except BaseException as exc:  # told to the test's thread
            failed.append(exc)
        finally:
            serving.set()

    def ready() -> None:
        cloud.update(write_cloud_json())
        serving.set()

    thread = threading.Thread(target=run, name="cloud-in-this-process", daemon=True)
    try:
        write_cloud_json = host.open_cloud(config, hosted)
        thread.start()
        if not serving.wait(60) or failed or not cloud:
            raise RuntimeError("the cloud did not start serving") from next(iter(failed), None)
        yield cloud
    finally:
        if thread.is_alive():
            hosted.stop()
            thread.join(60)
        if thread.is_alive():
            raise RuntimeError("the cloud did not stop within a minute")  # left running
        hosted.close()
