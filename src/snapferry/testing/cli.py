"""Running the ``snapferry`` CLI as a user does, against a ``RunningCloud``, for tests."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from snapferry.testing.cloud import RunningCloud


def cli_env(cloud: RunningCloud, scratch: Path) -> dict[str, str]:
    """The CLI's environment: cloud.json found by default (SNAPFERRY_HOME), private HOME and
    XDG_DATA_HOME under scratch, and no other SNAPFERRY_ setting."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SNAPFERRY_")}
    return {
        **base,
        "SNAPFERRY_HOME": str(cloud.data_dir),
        "HOME": str(scratch / "home"),
        "XDG_DATA_HOME": str(scratch / "xdg"),
        "COLUMNS": "200",
    }


def run(env: dict[str, str], args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``snapferry ARGS``; no run may show a traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "snapferry.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def snapferry(
    cloud: RunningCloud, env: dict[str, str], command: str
) -> subprocess.CompletedProcess[str]:
    """Run ``snapferry <command>`` (split as a shell would); no run may show a traceback or
    cloud.json's admin token."""
    proc = run(env, shlex.split(command))
    assert cloud.cloud["token"] not in proc.stdout + proc.stderr
    return proc


def json_of(proc: subprocess.CompletedProcess[str]) -> Any:
    """The one JSON document a successful ``--output json`` run printed."""
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
