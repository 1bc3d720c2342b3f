"""Zone redundancy: seal, read and repair throughput of a region with three zones against one
with a single store, in the same run.

Two regions on the same filesystem: ``lrs`` (one store) and ``zrs`` (zones 1, 2, 3: every pack
written to each zone's store, acknowledged once two hold it). For each, N MiB of typical pages
are written into a fresh disk and snapshotted (the seal: hash + compress + store, timed), then
the snapshot is read back whole through ``read_snapshot`` (verified, cache dropped first).
Then zone 1 of ``zrs`` — the zone reads go to first — is deleted: the snapshot is read again
(every frame now comes from zone 2, after zone 1 failed to answer), and ``repair`` refills zone
1, against ``cp`` + fsync of the same stored bytes. Goal: ZRS seal and read >= 0.5x the single
store's.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from _common import (
    MiB,
    emit,
    fsync_file,
    mbps,
    median,
    parse_args,
    rng,
    scratch,
    settle,
    stored_bytes,
    timed,
    typical_pages,
    write_contiguous,
)
from snapferry.engine import Engine
from snapferry.engine.zones import repair, zone_root
from snapferry.settings import PAGE

ZONES = ("1", "2", "3")
READ_STEP = 64 * MiB


def read_all(engine: Engine, snapshot_id: str, size: int) -> None:
    engine.objects.forget()  # every frame from the store, not the bundle cache
    for at in range(0, size, READ_STEP):
        engine.read_snapshot(snapshot_id, at, min(READ_STEP, size - at))


def cp_fsync(src: Path, dst: Path) -> float:
    def run() -> None:
        subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
        for path in dst.rglob("*"):
            if path.is_file():
                fsync_file(path)

    settle()
    took, _ = timed(run)
    shutil.rmtree(dst)
    return took


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    nbytes = (64 if args.quick else 512) * MiB
    data = typical_pages(rng(11), nbytes // PAGE).reshape(-1)
    rounds: dict[str, list[float]] = {
        k: [] for k in ("lrs_seal", "zrs_seal", "lrs_read", "zrs_read", "zrs_degraded_read")
    }
    repairs: list[float] = []
    copies: list[float] = []
    stored = 0
    with scratch(args.dir) as root:
        for rep in range(args.reps):
            data.reshape(-1, PAGE)[:, :8] ^= 1 + rep  # nothing deduplicates across reps
            engines = {
                "lrs": Engine.open(root / f"lrs-{rep}"),
                "zrs": Engine.open(root / f"zrs-{rep}", zones=ZONES),
            }
            try:
                snaps = {}
                for name, engine in engines.items():
                    disk = engine.create_disk(nbytes).id
                    write_contiguous(engine, disk, 0, data)
                    settle()
                    seal_s, snap = timed(engine.create_snapshot, disk)
                    snaps[name] = snap.id
                    rounds[f"{name}_seal"].append(seal_s)
                    settle()
                    rounds[f"{name}_read"].append(timed(read_all, engine, snap.id, nbytes)[0])
                zrs = engines["zrs"]
                stored = stored_bytes(zrs)
                lost = zone_root(zrs.data_dir, "1")
                copies.append(cp_fsync(zone_root(zrs.data_dir, "2"), root / "peer-copy"))
                shutil.rmtree(lost)
                settle()
                degraded, _ = timed(read_all, zrs, snaps["zrs"], nbytes)
                rounds["zrs_degraded_read"].append(degraded)
                settle()
                took, report = timed(repair, zrs)
                if not report.clean or report.bytes_copied != stored:
                    raise RuntimeError(f"the repair did not refill zone 1: {report}")
                repairs.append(took)
            finally:
                for engine in engines.values():
                    engine.close()
    rates = {k: mbps(nbytes, median(v)) for k, v in rounds.items()}
    repair_rate = mbps(stored, median(repairs))
    cp_rate = mbps(stored, median(copies))
    print(f"{nbytes // MiB} MiB of typical pages, {args.reps} rounds, medians (MB/s of disk data)")
    print(f"{'':<36}{'single store':>14}{'3 zones':>10}{'ratio':>8}")
    for what in ("seal", "read"):
        one, three = rates[f"lrs_{what}"], rates[f"zrs_{what}"]
        print(f"{what:<36}{one:14.0f}{three:10.0f}{three / one:8.2f}")
    print(
        f"{'read with zone 1 deleted':<36}{'':>14}{rates['zrs_degraded_read']:10.0f}"
        f"{rates['zrs_degraded_read'] / rates['zrs_read']:8.2f}  (of the 3-zone read)"
    )
    print(
        f"repair of the lost zone: {repair_rate:.0f} MB/s of stored packs "
        f"({stored // MiB} MiB) vs cp -r + fsync {cp_rate:.0f} MB/s: {repair_rate / cp_rate:.2f}x"
    )
    emit(
        {
            "bench": "zones",
            "quick": args.quick,
            "reps": args.reps,
            "bytes": nbytes,
            "stored_bytes": stored,
            **{f"{k}_MBps": round(v, 1) for k, v in rates.items()},
            "zrs_to_lrs_seal": round(rates["zrs_seal"] / rates["lrs_seal"], 3),
            "zrs_to_lrs_read": round(rates["zrs_read"] / rates["lrs_read"], 3),
            "degraded_to_zrs_read": round(rates["zrs_degraded_read"] / rates["zrs_read"], 3),
            "repair_MBps": round(repair_rate, 1),
            "repair_cp_MBps": round(cp_rate, 1),
            "repair_to_cp": round(repair_rate / cp_rate, 3),
            "target_zrs_to_lrs": 0.5,
            "rounds_seconds": {k: [round(x, 3) for x in v] for k, v in rounds.items()},
        }
    )


if __name__ == "__main__":
    main()
