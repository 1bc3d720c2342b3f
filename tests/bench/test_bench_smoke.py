"""Every benchmark still runs: each ``--quick`` variant ends with one JSON line of figures.

Speed is never asserted here (benchmarks measure; see bench/README.md) — only that the scripts
work against the current engine, so each runs one round.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_and_ends_with_json(script: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", "--reps", "1", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=BENCH,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["bench"] == script.removesuffix(".py")
