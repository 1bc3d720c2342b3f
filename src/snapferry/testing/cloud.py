"""A real snapferry cloud in a child process, for tests and benchmarks.

``RunningCloud.start(tmp)`` runs ``snapferry up`` (or ``serve region``/``serve frontdoor``
processes) on free loopback ports and waits for ``cloud.json``; ``kill`` sends SIGKILL, ``stop``
SIGTERM; ``restart`` starts it again on the same data directory.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = """
[[regions]]
name = "eastus"
zones = ["1", "2", "3"]
page_size = {page_size}
operation_delay = {delay}

[[regions]]
name = "westus"
page_size = {page_size}
operation_delay = {delay}
"""


def command(*args: str) -> list[str]:
    """The snapferry console script run by this interpreter."""
    return [sys.executable, "-c", "from snapferry.cli.main import main; main()", *args]


@dataclass
class RunningCloud:
    """A ``snapferry up`` child process and its cloud.json."""

    data_dir: Path
    config: Path
    port: int = 0
    args: tuple[str, ...] = ()
    """More options of ``snapferry up`` (``--log-level debug``)."""
    files: int | None = None
    """The process's limit on open files (soft and hard), as a small host would set it."""
    process: subprocess.Popen[bytes] | None = None
    cloud: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        data_dir: Path,
        *,
        page_size: int = 100,
        operation_delay: float = 0.0,
        config_text: str | None = None,
        tls: bool = False,
        args: tuple[str, ...] = (),
        files: int | None = None,
    ) -> RunningCloud:
        data_dir.mkdir(parents=True, exist_ok=True)
        config = data_dir / "cloud.toml"
        text = config_text or DEFAULT_CONFIG.format(page_size=page_size, delay=operation_delay)
        if tls:
            text = "[frontdoor]\ntls = true\n" + text
        config.write_text(text)
        cloud = cls(data_dir, config, args=args, files=files)
        cloud.launch()
        return cloud

    def launch(self, timeout: float = 60.0) -> None:
        """Start ``snapferry up`` and wait until it has written a fresh cloud.json."""
        marker = self.data_dir / "cloud.json"
        marker.unlink(missing_ok=True)
        with (self.data_dir / "up.log").open("ab") as log:
            self.process = subprocess.Popen(
                command(
                    "up",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                    "--config",
                    str(self.config),
                    *self.args,
                ),
                stdout=log,
                stderr=log,
                preexec_fn=None if self.files is None else self._limit_files,
            )
        deadline = time.monotonic() + timeout
        while not marker.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"snapferry up exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"snapferry up did not get ready: {self.log_tail()}")
            time.sleep(0.05)
        self.cloud = json.loads(marker.read_text())
        self.port = int(self.cloud["endpoint"].rsplit(":", 1)[1])

    def _limit_files(self) -> None:
        assert self.files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.files, self.files))

    def log_tail(self) -> str:
        path = self.data_dir / "up.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    @property
    def endpoint(self) -> str:
        return str(self.cloud["endpoint"])

    def kill(self) -> None:
        """SIGKILL: no shutdown work at all."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait: a graceful shutdown. Returns the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def restart(self) -> None:
        self.kill()
        self.launch()
