"""Regions and a front door as separate processes (``snapferry serve``), as across hosts, for
tests: each region on its own loopback port and ``url``, killed and started one at a time."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from snapferry.testing.cloud import command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    """Two region processes and a front door over one configuration file."""

    def __init__(self, root: Path, extra: dict[str, str] | None = None) -> None:
        """``extra``: TOML lines added to a region's entry, by region name."""
        self.root = root
        ports = self.ports = {"eastus": free_port(), "westus": free_port()}
        self.config = root / "cloud.toml"
        self.config.write_text(
            "".join(
                f'[[regions]]\nname = "{name}"\nlisten = "127.0.0.1:{port}"\n'
                f'url = "http://127.0.0.1:{port}"\npage_size = 2\n'
                + ('zones = ["1", "2"]\n' if name == "eastus" else "")
                + (extra or {}).get(name, "")
                + "\n"
                for name, port in ports.items()
            )
        )
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> None:
        with (self.root / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                command("serve", *args, "--config", str(self.config), "--data-dir", str(self.root)),
                stdout=log,
                stderr=log,
            )

    def start_region(self, name: str) -> None:
        self.start(name, "region", "--name", name)

    def wait_cloud(self) -> dict[str, Any]:
        marker = self.root / "cloud.json"
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < deadline, (self.root / "frontdoor.log").read_text()
            time.sleep(0.05)
        return dict(json.loads(marker.read_text()))

    def wait_regions(self, timeout: float = 60.0) -> None:
        """Return once every region answers its health check."""
        deadline = time.monotonic() + timeout
        for name, port in self.ports.items():
            while True:
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/snapferry/health", timeout=2
                    ) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    pass
                log = (self.root / f"{name}.log").read_text(errors="replace")[-2000:]
                assert time.monotonic() < deadline, f"region {name} did not start: {log}"
                time.sleep(0.05)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def close(self) -> None:
        for name in list(self.procs):
            self.kill(name)


@contextmanager
def regions_and_front_door(root: Path, extra: dict[str, str] | None = None) -> Iterator[Processes]:
    """eastus, westus and a front door (on any free port) started under root, killed after."""
    procs = Processes(root, extra)
    try:
        procs.start_region("eastus")
        procs.start_region("westus")
        procs.start("frontdoor", "frontdoor", "--port", "0")
        yield procs
    finally:
        procs.close()
