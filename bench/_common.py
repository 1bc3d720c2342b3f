"""Helpers shared by the benchmark scripts: arguments, scratch directories, test data, output.

Every script prints human-readable lines and then, as its last line, one JSON object holding all
of its figures. Sizes in MB/s are decimal (10^6 bytes per second); sizes of data are binary (MiB).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import text

from snapferry.engine.core import Engine
from snapferry.settings import PAGE

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB
MB = 1_000_000

_TEXT = np.frombuffer(
    (b"2025-11-25T13:04:11Z host-17 snapferry[4211]: INFO sealed chunk batch ok\n" * 32)[:1024],
    dtype=np.uint8,
)


def parse_args(description: str, reps: int = 3) -> argparse.Namespace:
    """The options every script takes: ``--quick``, ``--dir`` and ``--reps`` (default ``reps``,
    or 3 with ``--quick``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run, < 30 s)")
    parser.add_argument("--dir", type=Path, default=None, help="scratch parent (default /tmp)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (median reported)")
    args = parser.parse_args()
    if args.reps is None:
        args.reps = 3 if args.quick else reps
    return args


@contextlib.contextmanager
def scratch(parent: Path | None) -> Iterator[Path]:
    """A fresh temporary directory, removed afterwards whatever happens."""
    root = Path(tempfile.mkdtemp(prefix="snapferry-bench-", dir=parent or "/tmp"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def open_engine(path: Path) -> Iterator[Engine]:
    engine = Engine.open(path)
    try:
        yield engine
    finally:
        engine.close()


def rng(seed: int) -> np.random.Generator:
    """A fast generator (SFC64 makes random bytes at several GB/s)."""
    return np.random.Generator(np.random.SFC64(seed))


def random_bytes(gen: np.random.Generator, nbytes: int) -> npt.NDArray[np.uint8]:
    """nbytes (a multiple of 8) of incompressible data."""
    words = gen.integers(0, np.iinfo(np.uint64).max, nbytes // 8, dtype=np.uint64, endpoint=True)
    return words.view(np.uint8)


def typical_pages(gen: np.random.Generator, count: int) -> npt.NDArray[np.uint8]:
    """``(count, 4096)`` disk-like pages: each half random bytes, a quarter log text, a quarter
    zeros, so zstd-1 stores about half of it."""
    pages = np.zeros((count, PAGE), dtype=np.uint8)
    half = PAGE // 2
    pages[:, :half] = random_bytes(gen, count * half).reshape(count, half)
    pages[:, half : half + len(_TEXT)] = _TEXT
    return pages


def random_pages(gen: np.random.Generator, total_pages: int, count: int) -> npt.NDArray[np.int64]:
    """count distinct page indices in ``[0, total_pages)``, in random order."""
    return gen.choice(total_pages, count, replace=False).astype(np.int64)


def write_pages(
    engine: Engine,
    disk_id: str,
    page_ids: npt.NDArray[np.int64],
    pages: npt.NDArray[np.uint8],
    batch: int = 1024,
) -> None:
    """Write pages[i] at page page_ids[i], ``batch`` writes per durability barrier."""
    ids = page_ids.tolist()
    for lo in range(0, len(ids), batch):
        engine.write_many(
            disk_id,
            [(ids[i] * PAGE, memoryview(pages[i])) for i in range(lo, min(lo + batch, len(ids)))],
        )


def write_contiguous(
    engine: Engine, disk_id: str, offset: int, data: npt.NDArray[np.uint8], piece: int = 32 * MiB
) -> None:
    """Write a flat byte array at offset, ``piece`` bytes per call."""
    flat = memoryview(np.ascontiguousarray(data).reshape(-1))
    for lo in range(0, len(flat), piece):
        engine.write(disk_id, offset + lo, flat[lo : lo + piece])


def stored_bytes(engine: Engine) -> int:
    """Bytes of every pack the catalog records (pending packs count 0 until they go live)."""
    with engine.db.connect() as conn:
        total = conn.execute(text("SELECT coalesce(sum(size_bytes), 0) FROM packs")).scalar()
    return int(total or 0)


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Seconds ``fn(*args, **kwargs)`` took, and what it returned."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def settle() -> None:
    """Flush the filesystem before a timed step, so the step does not pay for earlier work
    (dirty pages, and on filesystems mounted with ``discard`` the discards of freed blocks)."""
    os.sync()


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def mbps(nbytes: int, seconds: float) -> float:
    return nbytes / MB / seconds if seconds > 0 else float("inf")


def emit(figures: dict[str, Any]) -> None:
    """Print the figures as the script's last line (one JSON object)."""
    print(json.dumps(figures, sort_keys=True), flush=True)
