"""``snapferry up`` and ``serve``: a bad configuration or address is a one-line usage error
(exit 2), nothing is created, and no traceback is shown."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from snapferry.testing.cloud import command

pytestmark = pytest.mark.slow

TWO_REGIONS = '[[regions]]\nname = "eastus"\n\n[[regions]]\nname = "westus"\n'


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SNAPFERRY_HOME": str(tmp_path / "home")}
    return subprocess.run(
        command(*args), env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("config", "args", "words"),
    [
        ("[[regions]\nname=", ("up",), "not valid TOML"),
        ('[[regions]]\nname = "East US"\n', ("up",), "region name"),
        ('[[regions]]\nname = "eastus"\npage_size = 0\n', ("up",), "page_size"),
        ('[frontdoor]\nlisten = "nowhere"\n', ("up",), "listen address"),
        ('[frontdoor]\npublic_url = "ftp://x"\n', ("up",), "public_url"),
        (TWO_REGIONS + TWO_REGIONS, ("up",), "unique"),
        (TWO_REGIONS, ("serve", "region"), "--name"),
        (TWO_REGIONS, ("serve", "region", "--name", "northpole"), "no region"),
        (TWO_REGIONS, ("serve", "frontdoor"), "without a url"),
    ],
)
def test_bad_configurations_are_usage_errors(
    tmp_path: Path, config: str, args: tuple[str, ...], words: str
) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text(config)
    done = run(tmp_path, *args, "--config", str(path), "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 2, done.stderr
    assert words in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "cloud.json").exists()


def test_a_port_in_use_is_a_usage_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run(tmp_path, "up", "--data-dir", str(tmp_path / "data"), "--port", str(port))
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # nothing was created
