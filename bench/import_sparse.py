"""Sparse image import against ``cp --sparse=always`` of the same file.

A raw image of 64 GiB apparent size holds 256 MiB of typical data in scattered 1-8 MiB extents,
holes between them. We time ``images.import_image`` (durable when it returns: every batch of
writes is fsynced) against ``cp --sparse=always`` plus an fsync of the copy, after one untimed cp
has warmed the page cache for both. Target: import time <= 2 x cp time. Also reports the bytes the
import read against the bytes of data in the image.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

from _common import (
    GiB,
    MiB,
    emit,
    fsync_file,
    mbps,
    median,
    open_engine,
    parse_args,
    rng,
    scratch,
    settle,
    timed,
    typical_pages,
)
from snapferry.engine import images
from snapferry.settings import PAGE

TARGET_RATIO = 2.0


def extent_layout(gen: np.random.Generator, apparent: int, data: int) -> list[tuple[int, int]]:
    """Non-overlapping page-aligned ``(offset, length)`` extents of 1-8 MiB summing to data, each
    at a random place in its own equal share of the file (so holes lie between all of them)."""
    lengths: list[int] = []
    left = data
    while left > 0:
        length = int(gen.integers(MiB // PAGE, 8 * MiB // PAGE, endpoint=True)) * PAGE
        lengths.append(min(length, left))
        left -= lengths[-1]
    share = apparent // len(lengths) // PAGE * PAGE
    return [
        (i * share + int(gen.integers(0, (share - length) // PAGE)) * PAGE, length)
        for i, length in enumerate(lengths)
    ]


def build_image(path: Path, apparent: int, data: int) -> int:
    """Write the sparse image; returns the number of extents."""
    gen = rng(11)
    layout = extent_layout(gen, apparent, data)
    content = typical_pages(gen, data // PAGE).reshape(-1)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, apparent)
        pos = 0
        for offset, length in layout:
            piece = memoryview(content[pos : pos + length])
            done = 0
            while done < length:
                done += os.pwrite(fd, piece[done:], offset + done)
            pos += length
        os.fsync(fd)
    finally:
        os.close(fd)
    return len(layout)


def copy(src: Path, dst: Path, sync: bool) -> float:
    def run() -> None:
        subprocess.run(["cp", "--sparse=always", str(src), str(dst)], check=True)
        if sync:
            fsync_file(dst)

    settle()
    took, _ = timed(run)
    dst.unlink()
    return took


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    apparent, data = (4 * GiB, 32 * MiB) if args.quick else (64 * GiB, 256 * MiB)
    cps, cps_nosync, imports, reads, written = [], [], [], [], []
    with scratch(args.dir) as root:
        image, dst = root / "image.raw", root / "copy.raw"
        extents = build_image(image, apparent, data)
        print(
            f"image: {apparent / GiB:.0f} GiB apparent, {data / MiB:.0f} MiB of data "
            f"in {extents} extents"
        )
        copy(image, dst, sync=True)  # warm-up: the image's pages are now cached for both
        with open_engine(root / "region") as engine:
            for rep in range(args.reps):
                cps.append(copy(image, dst, sync=True))
                cps_nosync.append(copy(image, dst, sync=False))
                settle()
                took, (disk, report) = timed(images.import_image, engine, image)
                imports.append(took)
                reads.append(report.bytes_read)
                written.append(report.bytes_written)
                engine.delete_disk(disk.id)
                print(
                    f"rep {rep + 1}: import {took:6.3f} s ({mbps(data, took):7.1f} MB/s of data), "
                    f"cp+fsync {cps[-1]:6.3f} s, cp {cps_nosync[-1]:6.3f} s, "
                    f"read {report.bytes_read / MiB:.1f} MiB"
                )
    imp, cp_s, cp_nosync = median(imports), median(cps), median(cps_nosync)
    ratio = imp / cp_s
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(
        f"import {imp:.3f} s vs cp --sparse=always + fsync {cp_s:.3f} s: import takes "
        f"{ratio:.2f}x cp's time ({verdict} target <= {TARGET_RATIO}x); "
        f"vs cp without fsync {imp / cp_nosync:.2f}x"
    )
    print(
        f"import read {int(median([float(r) for r in reads])) / MiB:.1f} MiB "
        f"for {data / MiB:.0f} MiB of data"
    )
    emit(
        {
            "bench": "import_sparse",
            "quick": args.quick,
            "reps": args.reps,
            "apparent_bytes": apparent,
            "data_bytes": data,
            "extents": extents,
            "import_seconds": round(imp, 4),
            "import_MBps_of_data": round(mbps(data, imp), 1),
            "cp_fsync_seconds": round(cp_s, 4),
            "cp_seconds_no_fsync": round(cp_nosync, 4),
            "import_to_cp_time_ratio": round(ratio, 3),
            "import_to_cp_no_fsync_time_ratio": round(imp / cp_nosync, 3),
            "bytes_read": int(median([float(r) for r in reads])),
            "bytes_read_per_data_byte": round(median([float(r) for r in reads]) / data, 4),
            "bytes_written": int(median([float(w) for w in written])),
            "target_time_ratio_max": TARGET_RATIO,
            "meets_target": ratio <= TARGET_RATIO,
        }
    )


if __name__ == "__main__":
    main()
