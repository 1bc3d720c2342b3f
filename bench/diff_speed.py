"""Diff speed: ``engine.diff(S1, S2)`` on a 1 TiB disk after 16384 random 4 KiB writes.

S1 already holds 16384 random pages of its own (so the target's lineage is not trivial); then
16384 more random 4 KiB writes (64 MiB) and S2. ``cold`` times a diff with the engine's block-map
cache emptied first (maps are loaded and decoded from the database); ``warm`` repeats it with maps
cached. Target: cold diff < 1 s. For scale, a floor: sorting the written page numbers in Python.
"""

from __future__ import annotations

from _common import (
    MiB,
    TiB,
    emit,
    median,
    open_engine,
    parse_args,
    random_pages,
    rng,
    scratch,
    timed,
    typical_pages,
    write_pages,
)
from snapferry.settings import PAGE

TARGET_SECONDS = 1.0


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    writes = 2048 if args.quick else 16384
    size = TiB
    gen = rng(5)
    with scratch(args.dir) as root, open_engine(root / "region") as engine:
        disk = engine.create_disk(size).id
        write_pages(
            engine, disk, random_pages(gen, size // PAGE, writes), typical_pages(gen, writes)
        )
        s1 = engine.create_snapshot(disk).id
        changed_pages = random_pages(gen, size // PAGE, writes)
        write_pages(engine, disk, changed_pages, typical_pages(gen, writes))
        s2 = engine.create_snapshot(disk).id
        cold, warm = [], []
        result = None
        for _ in range(args.reps):
            engine.maps.invalidate()
            took, result = timed(engine.diff, s1, s2)
            cold.append(took)
            took, result = timed(engine.diff, s1, s2)
            warm.append(took)
        assert result is not None
        # a floor for scale: just sorting the page numbers the answer is made of
        floor, _ = timed(sorted, changed_pages.tolist())
    cold_s, warm_s = median(cold), median(warm)
    verdict = "meets" if cold_s < TARGET_SECONDS else "MISSES"
    print(
        f"1 TiB disk, {writes} random 4 KiB writes ({writes * PAGE / MiB:.0f} MiB) "
        "between S1 and S2"
    )
    print(f"diff cold {cold_s:.4f} s ({verdict} target < {TARGET_SECONDS} s), warm {warm_s:.4f} s")
    print(
        f"{len(result.changed)} changed extents, {result.changed_bytes / MiB:.2f} MiB changed, "
        f"{len(result.cleared)} cleared extents"
    )
    print(f"floor: sorting the {writes} written page numbers in Python takes {floor:.4f} s")
    emit(
        {
            "bench": "diff_speed",
            "quick": args.quick,
            "reps": args.reps,
            "disk_bytes": size,
            "writes": writes,
            "diff_cold_seconds": round(cold_s, 5),
            "diff_warm_seconds": round(warm_s, 5),
            "changed_extents": len(result.changed),
            "changed_bytes": result.changed_bytes,
            "cleared_extents": len(result.cleared),
            "sort_floor_seconds": round(floor, 5),
            "cold_to_sort_floor_ratio": round(cold_s / floor, 2) if floor > 0 else None,
            "target_seconds_max": TARGET_SECONDS,
            "meets_target": cold_s < TARGET_SECONDS,
        }
    )


if __name__ == "__main__":
    main()
