"""First copy of a snapshot to another region: MB/s of a CopyStart of a disk full of
incompressible data, from the PUT until the target is Succeeded, against ``cp`` of the same
bytes (+ fsync) and raw loopback TCP (one connection, Python sockets) measured in the same run,
and durable writes through the page cache: the same bytes written as new 64 MiB files, each
fsynced (a copy must make its packs durable before it may say it holds them; it writes them
around the cache).

A ``snapferry up`` cloud (eastus, westus) runs in a child process. The eastus disk (4 GiB;
``--quick`` 64 MiB) is filled through its SAS with random blocks, snapshotted, and copied to
a target region of its own once per round (``--reps``: westus1, westus2, ...), so every copy is
a first copy into a region that holds nothing yet. Each target is read back and checked block
by block against the source.
Product target: copy >= 0.5x ``cp``.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np

from _common import GiB, MiB, emit, fsync_file, mbps, median, parse_args, random_bytes, rng, scratch
from _copies import BLOCK, Cloud, block_digests, fill
from snapferry.testing.copies import PAGE

TARGET = 0.5
SEED = 7


def block(i: int) -> bytes:
    return random_bytes(rng(SEED + i), BLOCK).tobytes()


def cp_once(src: Path, dest: Path) -> float:
    dest.unlink(missing_ok=True)
    os.sync()
    start = time.perf_counter()
    os.system(f"cp {src} {dest}")
    fsync_file(dest)
    return time.perf_counter() - start


def durable_once(src: Path, root: Path) -> float:
    """Seconds to write src's bytes as new 64 MiB files through the page cache, each fsynced."""
    out = root / "durable"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    os.sync()
    piece = 64 * MiB
    start = time.perf_counter()
    with src.open("rb") as f:
        n = 0
        while data := f.read(piece):
            fd = os.open(out / f"{n:06d}", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            n += 1
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def tcp_once(size: int) -> float:
    """Seconds to send size bytes over one loopback TCP connection and receive them."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received = [0]

    def sink() -> None:
        conn, _ = server.accept()
        buf = bytearray(BLOCK)
        with conn:
            while n := conn.recv_into(buf):
                received[0] += n

    thread = threading.Thread(target=sink)
    thread.start()
    data = block(0)
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as client:
        for _ in range(size // BLOCK):
            client.sendall(data)
    thread.join()
    server.close()
    assert received[0] == size
    return time.perf_counter() - start


def main() -> None:
    args = parse_args(__doc__ or "")
    size = 64 * MiB if args.quick else 4 * GiB
    with scratch(args.dir) as root:
        image = root / "image.raw"
        with image.open("wb") as f:
            for i in range(size // BLOCK):
                f.write(block(i))
        targets = tuple(f"westus{rep + 1}" for rep in range(args.reps))
        cloud = Cloud(root, targets)
        try:
            disk = fill(cloud, "data", size, block)
            source = cloud.snapshot("data-1", disk)
            expected = block_digests(cloud, "data-1")
            copies, cps, tcps, durables, wires = [], [], [], [], []
            verified = True
            for rep, region in enumerate(targets):
                seconds, report = cloud.copy(source, f"data-1-{region}", region)
                copies.append(seconds)
                wires.append(report["bytesTransferred"])
                assert report["bytesTotal"] == size, report
                assert report["baseSnapshot"] is None, report
                assert report["bytesTransferred"] >= size, report  # it all travelled
                cps.append(cp_once(image, root / "image.copy"))
                tcps.append(tcp_once(size))
                durables.append(durable_once(image, root))
                print(
                    f"round {rep + 1}: copy {mbps(size, seconds):.0f} MB/s, "
                    f"cp {mbps(size, cps[-1]):.0f} MB/s, tcp {mbps(size, tcps[-1]):.0f} MB/s, "
                    f"durable writes {mbps(size, durables[-1]):.0f} MB/s",
                    flush=True,
                )
                verified &= block_digests(cloud, f"data-1-{region}") == expected
        finally:
            cloud.close()
    copy_mb_s, cp_mb_s, tcp_mb_s, durable_mb_s = (
        mbps(size, median(x)) for x in (copies, cps, tcps, durables)
    )
    print(f"first copy of {size // MiB} MiB of incompressible data to another region:")
    print(f"  CopyStart  {copy_mb_s:8.0f} MB/s  ({median(copies):.2f} s)")
    print(
        f"  cp+fsync   {cp_mb_s:8.0f} MB/s  -> copy/cp {copy_mb_s / cp_mb_s:.2f}x (target {TARGET})"
    )
    print(f"  raw TCP    {tcp_mb_s:8.0f} MB/s  -> copy/tcp {copy_mb_s / tcp_mb_s:.2f}x")
    print(
        f"  durable    {durable_mb_s:8.0f} MB/s  -> copy/durable writes "
        f"{copy_mb_s / durable_mb_s:.2f}x"
    )
    print(f"  bytes on the wire per byte copied: {median(wires) / size:.3f}; verified: {verified}")
    emit(
        {
            "bench": "copy_first",
            "size_bytes": size,
            "copy_mb_s": round(copy_mb_s, 1),
            "cp_mb_s": round(cp_mb_s, 1),
            "tcp_mb_s": round(tcp_mb_s, 1),
            "copy_to_cp": round(copy_mb_s / cp_mb_s, 3),
            "copy_to_tcp": round(copy_mb_s / tcp_mb_s, 3),
            "durable_write_mb_s": round(durable_mb_s, 1),
            "copy_to_durable_write": round(copy_mb_s / durable_mb_s, 3),
            "wire_per_byte": round(median(wires) / size, 4),
            "meets_target": copy_mb_s / cp_mb_s >= TARGET,
            "verified": verified,
            "pages": size // PAGE,
        }
    )


if __name__ == "__main__":
    np.seterr(all="raise")
    main()
