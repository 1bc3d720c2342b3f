"""Snapshot creation time through the ARM API does not depend on disk size.

A ``snapferry up`` cloud runs in a child process. One client, one request at a time: snapshot
PUTs of a 1 GiB disk and of a 32 TiB disk (both freshly made, nothing written: the API has no
data plane yet, so the engine's ``snapshot_cost.py`` covers written pages), each polled every
5 ms to ``Succeeded``; the reps alternate between the disks. Peer in the same run: a GET of the
disk through the same front door (the fixed cost of one ARM round trip).
"""

from __future__ import annotations

import time
from typing import Any

import requests

from _common import emit, median, parse_args, scratch
from snapferry.testing.arm import Raw
from snapferry.testing.cloud import RunningCloud

V = "?api-version=2024-03-02"
SIZES_GB = {"1GiB": 1, "32TiB": 32 * 1024}


def wait(raw: Raw, reply: requests.Response) -> None:
    path = reply.headers["Azure-AsyncOperation"].split(raw.base, 1)[1]
    while True:
        status = raw("GET", path).json()["status"]
        if status != "InProgress":
            assert status == "Succeeded", status
            return
        time.sleep(0.005)


def disk_body(gb: int) -> dict[str, Any]:
    return {
        "location": "eastus",
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": gb},
    }


def main() -> None:
    args = parse_args(__doc__ or "", reps=31)
    with scratch(args.dir) as root:
        cloud = RunningCloud.start(root / "cloud")
        try:
            raw = Raw(cloud.cloud)
            assert raw("PUT", raw.rg_path("bench") + V, json={"location": "eastus"}).ok
            ids = {}
            for label, gb in SIZES_GB.items():
                reply = raw("PUT", raw.item("bench", "disks", label) + V, json=disk_body(gb))
                wait(raw, reply)
                ids[label] = reply.json()["id"]
            times: dict[str, list[float]] = {label: [] for label in SIZES_GB}
            gets: list[float] = []
            for rep in range(args.reps):
                for label in SIZES_GB:
                    body = {
                        "location": "eastus",
                        "properties": {
                            "creationData": {"createOption": "Copy", "sourceResourceId": ids[label]}
                        },
                    }
                    start = time.perf_counter()
                    reply = raw(
                        "PUT", raw.item("bench", "snapshots", f"{label}-{rep}") + V, json=body
                    )
                    assert reply.status_code == 202, reply.text
                    wait(raw, reply)
                    times[label].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    assert raw("GET", raw.item("bench", "disks", label) + V).ok
                    gets.append(time.perf_counter() - start)
        finally:
            cloud.kill()
    small, large = median(times["1GiB"]), median(times["32TiB"])
    get = median(gets)
    print(
        f"snapshot PUT to Succeeded, 1 GiB disk:  median {small * 1000:7.2f} ms ({args.reps} reps)"
    )
    print(f"snapshot PUT to Succeeded, 32 TiB disk: median {large * 1000:7.2f} ms")
    print(f"ratio 32 TiB / 1 GiB: {large / small:.2f}  (target: about 1)")
    print(
        f"peer: ARM GET of a disk through the same front door: median {get * 1000:.2f} ms; "
        f"a snapshot costs {small / get:.1f} GETs"
    )
    emit(
        {
            "bench": "arm_snapshot_size",
            "reps": args.reps,
            "quick": args.quick,
            "snapshot_1GiB_ms": round(small * 1000, 2),
            "snapshot_32TiB_ms": round(large * 1000, 2),
            "ratio_32TiB_to_1GiB": round(large / small, 3),
            "get_ms": round(get * 1000, 2),
        }
    )


if __name__ == "__main__":
    main()
