"""Sealing throughput: hash + compress + store of the data a snapshot changed, against cp.

N MiB of contiguous data are written into a fresh disk and ``create_snapshot`` is timed (it seals
before it returns). The peer is ``cp`` of a file holding the same bytes on the same filesystem,
followed by an fsync of the copy (a seal is durable too). Both incompressible and typical data.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt

from _common import (
    MiB,
    emit,
    fsync_file,
    mbps,
    median,
    open_engine,
    parse_args,
    random_bytes,
    rng,
    scratch,
    settle,
    stored_bytes,
    timed,
    typical_pages,
    write_contiguous,
)
from snapferry.engine.core import Engine
from snapferry.settings import PAGE


def make_data(kind: str, nbytes: int) -> npt.NDArray[np.uint8]:
    gen = rng(7)
    if kind == "incompressible":
        return random_bytes(gen, nbytes)
    return typical_pages(gen, nbytes // PAGE).reshape(-1)


def copy_once(src: Path, dst: Path) -> float:
    """Seconds for ``cp src dst`` plus an fsync of dst."""

    def run() -> None:
        subprocess.run(["cp", str(src), str(dst)], check=True)
        fsync_file(dst)

    settle()
    took, _ = timed(run)
    dst.unlink()
    return took


def seal_once(engine: Engine, data: npt.NDArray[np.uint8]) -> tuple[float, float, int]:
    """Write data into a fresh disk, snapshot it: (write seconds, snapshot seconds, stored)."""
    disk = engine.create_disk(len(data))
    write_s, _ = timed(write_contiguous, engine, disk.id, 0, data)
    before = stored_bytes(engine)
    settle()
    seal_s, _ = timed(engine.create_snapshot, disk.id)
    return write_s, seal_s, stored_bytes(engine) - before


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    nbytes = (64 if args.quick else 512) * MiB
    figures: dict[str, object] = {
        "bench": "seal_throughput",
        "quick": args.quick,
        "reps": args.reps,
        "bytes": nbytes,
    }
    with scratch(args.dir) as root, open_engine(root / "region") as engine:
        for kind in ("incompressible", "typical"):
            data = make_data(kind, nbytes)
            src = root / f"{kind}.raw"
            src.write_bytes(data.data)
            fsync_file(src)
            seals, writes, copies, stored = [], [], [], []
            for rep in range(args.reps):
                # a different first word in every page each rep: nothing could be deduplicated
                data.reshape(-1, PAGE)[:, :8] ^= np.uint8(rep + 1)
                write_s, seal_s, size = seal_once(engine, data)
                copy_s = copy_once(src, root / "copy.raw")
                seals.append(seal_s)
                writes.append(write_s)
                copies.append(copy_s)
                stored.append(size)
                print(
                    f"{kind:>14} rep {rep + 1}: seal {mbps(nbytes, seal_s):7.1f} MB/s, "
                    f"cp+fsync {mbps(nbytes, copy_s):7.1f} MB/s, "
                    f"disk writes {mbps(nbytes, write_s):7.1f} MB/s"
                )
            src.unlink()
            seal_rate = mbps(nbytes, median(seals))
            cp_rate = mbps(nbytes, median(copies))
            stored_size = int(median([float(s) for s in stored]))
            figures[f"{kind}_seal_seconds"] = round(median(seals), 4)
            figures[f"{kind}_seal_MBps"] = round(seal_rate, 1)
            figures[f"{kind}_cp_fsync_seconds"] = round(median(copies), 4)
            figures[f"{kind}_cp_fsync_MBps"] = round(cp_rate, 1)
            figures[f"{kind}_seal_to_cp_ratio"] = round(seal_rate / cp_rate, 3)
            figures[f"{kind}_write_MBps"] = round(mbps(nbytes, median(writes)), 1)
            figures[f"{kind}_stored_bytes"] = stored_size
            figures[f"{kind}_stored_fraction"] = round(stored_size / nbytes, 4)
            print(
                f"{kind:>14}: seal {seal_rate:.1f} MB/s vs cp+fsync {cp_rate:.1f} MB/s "
                f"-> {seal_rate / cp_rate:.2f}x of cp; stored {stored_size / nbytes:.3f} "
                f"of {nbytes // MiB} MiB"
            )
    emit(figures)


if __name__ == "__main__":
    main()
