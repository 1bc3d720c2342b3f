"""Incremental copy to another region after 1 % random 4 KiB writes: seconds and bytes on the
wire of the CopyStart of the second snapshot, against ``rsync --inplace --no-whole-file``
bringing the old raw image up to the new one between two directories, in the same run.

A ``snapferry up`` cloud (eastus, westus) runs in a child process. The eastus disk (8 GiB;
``--quick`` 256 MiB) is filled through its SAS with incompressible blocks (the same bytes are
written to ``old.raw``), snapshotted and copied to westus (the first copy, reported but not the
figure). Then 1 % of its 4 KiB pages, chosen at random, get new random content through Put
Page (and in ``new.raw``); the second snapshot is copied, timed from the PUT until Succeeded.
The copy moves only those pages; rsync must read both images whole to find them. The target is
read back and checked block by block. Product targets: >= 20x faster than rsync, <= 1.1 bytes
on the wire per byte changed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from _common import GiB, MiB, emit, median, parse_args, random_bytes, rng, scratch
from _copies import BLOCK, GROUP, Cloud, block_digests, ensure_tool, fill, write_pages
from snapferry.testing.copies import PAGE

SEED = 11
FRACTION = 0.01
SPEEDUP = 20
WIRE = 1.1


def block(i: int) -> bytes:
    return random_bytes(rng(SEED + i), BLOCK).tobytes()


def rsync_once(rsync: str, new: Path, old: Path, work: Path) -> tuple[float, int]:
    """Seconds rsync takes to turn a copy of old into new, and the bytes it sent."""
    dest = work / "dest"
    dest.mkdir(exist_ok=True)
    target = dest / "image.raw"
    shutil.copyfile(old, target)
    os.sync()
    start = time.perf_counter()
    proc = subprocess.run(
        [rsync, "--inplace", "--no-whole-file", "--stats", str(new), str(target)],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - start
    sent = re.search(r"Total bytes sent: ([\d,]+)", proc.stdout)
    assert sent is not None, proc.stdout
    if target.read_bytes()[: 64 * MiB] != new.read_bytes()[: 64 * MiB]:
        raise RuntimeError("rsync did not reproduce the new image")
    return seconds, int(sent.group(1).replace(",", ""))


def main() -> None:
    args = parse_args(__doc__ or "", reps=3)
    rsync = ensure_tool("rsync")
    size = 256 * MiB if args.quick else 8 * GiB
    gen = rng(SEED - 1)
    with scratch(args.dir) as root:
        old, new = root / "old.raw", root / "new.raw"
        with old.open("wb") as f:
            for i in range(size // BLOCK):
                f.write(block(i))
        cloud = Cloud(root)
        try:
            disk = fill(cloud, "data", size, block)
            first = cloud.snapshot("day1", disk)
            first_seconds, first_report = cloud.copy(first, "day1-west")
            print(f"first copy: {size / first_seconds / 1e6:.0f} MB/s ({first_seconds:.1f} s)")
            count = int(size // PAGE * FRACTION)
            pages = np.sort(gen.choice(size // PAGE, count, replace=False))
            content = random_bytes(gen, count * PAGE).reshape(count, PAGE)
            writes = [(int(p) * PAGE, content[i].tobytes()) for i, p in enumerate(pages)]
            write_pages(cloud, "data", writes)
            shutil.copyfile(old, new)
            with new.open("r+b") as f:
                for offset, data in writes:
                    f.seek(offset)
                    f.write(data)
            changed = count * PAGE
            second = cloud.snapshot("day2", disk)
            seconds, report = cloud.copy(second, "day2-west")
            assert report["baseSnapshot"] is not None, report
            verified = block_digests(cloud, "day2-west") == block_digests(cloud, "day2")
            cloud.compute.snapshots.begin_delete(GROUP, "day2-west").result()
        finally:
            cloud.close()
        runs = [rsync_once(rsync, new, old, root) for _ in range(args.reps)]
    rsync_seconds = median([r[0] for r in runs])
    rsync_sent = int(median([float(r[1]) for r in runs]))
    wire = int(report["bytesTransferred"])
    speedup = rsync_seconds / seconds
    print(f"incremental copy after {FRACTION:.0%} random 4 KiB writes on {size // MiB} MiB:")
    print(f"  CopyStart  {seconds:7.2f} s, {wire:,} bytes on the wire for {changed:,} changed")
    print(f"  rsync      {rsync_seconds:7.2f} s, {rsync_sent:,} bytes sent")
    print(
        f"  copy is {speedup:.1f}x faster than rsync (target {SPEEDUP}x); "
        f"{wire / changed:.3f} wire bytes per changed byte (target <= {WIRE}); verified: {verified}"
    )
    emit(
        {
            "bench": "copy_incremental",
            "size_bytes": size,
            "changed_bytes": changed,
            "copy_s": round(seconds, 3),
            "copy_wire_bytes": wire,
            "copy_planned_bytes": int(report["bytesTotal"]),
            "wire_per_changed_byte": round(wire / changed, 4),
            "rsync_s": round(rsync_seconds, 3),
            "rsync_sent_bytes": rsync_sent,
            "speedup_vs_rsync": round(speedup, 2),
            "first_copy_mb_s": round(size / first_seconds / 1e6, 1),
            "first_copy_wire_bytes": int(first_report["bytesTransferred"]),
            "meets_target": speedup >= SPEEDUP and wire / changed <= WIRE,
            "verified": verified,
        }
    )


if __name__ == "__main__":
    main()
