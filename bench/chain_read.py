"""Chain read cost: materializing a chunk at the end of a patch chain, before and after compaction.

One chunk is first filled with typical data (a full version), then K = 8 successive snapshots each
change 64 random pages of it (8 patches: chain depth 8, the deepest that compaction leaves alone
at its default ``max_depth``). We time ``chunks.materialize`` of that chunk at the newest
snapshot: *cold* empties the engine's object cache first (``objects.forget()``: every version is
fetched, verified and decoded), *warm* reads with the versions cached. Then
``compact.compact(engine, max_depth=0)`` rewrites the patches as full versions. The peer is an
identical second region built the same way and then compacted; reads of the two are interleaved
in one process (cold reads vary a lot with the allocator's state), and the ratio is compacted /
chain throughput.
"""

from __future__ import annotations

import numpy as np

from _common import (
    MB,
    GiB,
    emit,
    median,
    open_engine,
    parse_args,
    rng,
    scratch,
    timed,
    typical_pages,
    write_pages,
)
from snapferry.engine import compact
from snapferry.engine.core import Engine
from snapferry.engine.resolve import View
from snapferry.settings import CHUNK, PAGES_PER_CHUNK

CHAIN = 8
PAGES_PER_STEP = 64
CHUNK_INDEX = 5


def build_chain(engine: Engine, gen: np.random.Generator) -> str:
    """The id of the newest snapshot of the chain."""
    disk = engine.create_disk(GiB).id
    first = CHUNK_INDEX * PAGES_PER_CHUNK
    whole = np.arange(first, first + PAGES_PER_CHUNK, dtype=np.int64)
    write_pages(engine, disk, whole, typical_pages(gen, PAGES_PER_CHUNK))
    newest = engine.create_snapshot(disk).id
    for _ in range(CHAIN):
        pages = first + gen.choice(PAGES_PER_CHUNK, PAGES_PER_STEP, replace=False)
        write_pages(engine, disk, pages.astype(np.int64), typical_pages(gen, PAGES_PER_STEP))
        newest = engine.create_snapshot(disk).id
    return newest


def cold_and_warm(engine: Engine, view: View) -> tuple[float, float, np.ndarray]:
    """Seconds of one cold and one warm read of the chunk, and its content."""
    engine.objects.forget()
    cold, data = timed(engine.chunks.materialize, view, CHUNK_INDEX)
    warm, _ = timed(engine.chunks.materialize, view, CHUNK_INDEX)
    return cold, warm, data


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    reads = 5 if args.quick else max(31, args.reps)
    cold: dict[str, list[float]] = {"chain": [], "compacted": []}
    warm: dict[str, list[float]] = {"chain": [], "compacted": []}
    with (
        scratch(args.dir) as root,
        open_engine(root / "chain") as chain,
        open_engine(root / "compacted") as flat,
    ):
        engines = {"chain": chain, "compacted": flat}
        newest = {name: build_chain(engine, rng(9)) for name, engine in engines.items()}
        compacted = compact.compact(flat, max_depth=0)
        views = {name: engines[name].snapshot_view(newest[name]) for name in engines}
        content = {}
        for i in range(reads):
            # interleaved, alternating who goes first: both see the same process and machine state
            order = list(engines) if i % 2 == 0 else list(reversed(engines))
            for name in order:
                c, w, content[name] = cold_and_warm(engines[name], views[name])
                cold[name].append(c)
                warm[name].append(w)
        if not np.array_equal(content["chain"], content["compacted"]):
            raise SystemExit("compaction changed the chunk's content")
    rate = {
        f"{name}_{mode}_MBps": CHUNK / MB / median(times[name])
        for name in engines
        for mode, times in (("cold", cold), ("warm", warm))
    }
    cold_ratio = rate["compacted_cold_MBps"] / rate["chain_cold_MBps"]
    warm_ratio = rate["compacted_warm_MBps"] / rate["chain_warm_MBps"]
    print(
        f"chunk filled, then {CHAIN} snapshots of {PAGES_PER_STEP} random pages each; "
        f"median of {reads} interleaved reads of one 4 MiB chunk"
    )
    for name in engines:
        print(
            f"{name:>9}: cold {rate[f'{name}_cold_MBps']:8.1f} MB/s, "
            f"warm {rate[f'{name}_warm_MBps']:8.1f} MB/s"
        )
    print(
        f"compacted / chain: cold {cold_ratio:.2f}x, warm {warm_ratio:.2f}x "
        f"(compaction rewrote {compacted.compacted} versions)"
    )
    figures: dict[str, object] = {
        "bench": "chain_read",
        "quick": args.quick,
        "reads": reads,
        "chain_patches": CHAIN,
        "pages_per_patch": PAGES_PER_STEP,
        "cold_ratio_compacted_to_chain": round(cold_ratio, 3),
        "warm_ratio_compacted_to_chain": round(warm_ratio, 3),
        "versions_compacted": compacted.compacted,
    }
    figures.update({key: round(value, 1) for key, value in rate.items()})
    emit(figures)


if __name__ == "__main__":
    main()
