"""Snapshot cost follows the bytes written, not the disk size.

A 1 GiB and a 1 TiB (sparse) disk each get 64 MiB of random-offset 4 KiB writes of typical data
since their previous snapshot; we time ``create_snapshot`` (freeze + seal) on each, and record the
bytes it stored. Target: 1 TiB time / 1 GiB time <= 1.2.
"""

from __future__ import annotations

from _common import (
    GiB,
    MiB,
    TiB,
    emit,
    median,
    open_engine,
    parse_args,
    random_pages,
    rng,
    scratch,
    settle,
    stored_bytes,
    timed,
    typical_pages,
    write_pages,
)
from snapferry.settings import PAGE

TARGET_RATIO = 1.2


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], reps=9)
    writes = 2048 if args.quick else 16384
    sizes = {"1GiB": GiB, "1TiB": TiB}
    gen = rng(1)
    seconds: dict[str, list[float]] = {name: [] for name in sizes}
    stored: dict[str, list[int]] = {name: [] for name in sizes}
    with scratch(args.dir) as root, open_engine(root / "region") as engine:
        disks = {name: engine.create_disk(size).id for name, size in sizes.items()}
        for disk_id in disks.values():
            engine.create_snapshot(disk_id)
        for rep in range(args.reps):
            # alternate the order so drift in the machine's speed hits both sizes alike
            order = list(sizes) if rep % 2 == 0 else list(reversed(sizes))
            for name in order:
                ids = random_pages(gen, sizes[name] // PAGE, writes)
                write_pages(engine, disks[name], ids, typical_pages(gen, writes))
                before = stored_bytes(engine)
                # the previous seal's overlay is deleted in the background: let it finish
                engine.trash.drain()
                settle()
                took, _ = timed(engine.create_snapshot, disks[name])
                seconds[name].append(took)
                stored[name].append(stored_bytes(engine) - before)
                print(
                    f"rep {rep + 1} {name:>4}: snapshot {took:7.3f} s, "
                    f"stored {stored[name][-1] / MiB:7.2f} MiB"
                )
    written = writes * PAGE
    figures: dict[str, object] = {
        "bench": "snapshot_cost",
        "quick": args.quick,
        "reps": args.reps,
        "writes": writes,
        "written_bytes": written,
    }
    print(f"\n{writes} random 4 KiB writes ({written / MiB:.0f} MiB) per snapshot, median of reps")
    medians = {name: median(seconds[name]) for name in sizes}
    for name in sizes:
        sec, size = medians[name], int(median([float(s) for s in stored[name]]))
        figures[f"seconds_{name}"] = round(sec, 4)
        figures[f"stored_bytes_{name}"] = size
        figures[f"stored_per_written_{name}"] = round(size / written, 4)
        print(
            f"{name:>4} disk: {sec:7.3f} s, "
            f"stored {size / MiB:7.2f} MiB "
            f"({size / written:.3f} of written)"
        )
    ratio = medians["1TiB"] / medians["1GiB"]
    figures["ratio_1TiB_to_1GiB"] = round(ratio, 3)
    figures["target_ratio_max"] = TARGET_RATIO
    figures["meets_target"] = ratio <= TARGET_RATIO
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(f"ratio 1 TiB / 1 GiB: {ratio:.2f} ({verdict} target <= {TARGET_RATIO})")
    emit(figures)


if __name__ == "__main__":
    main()
