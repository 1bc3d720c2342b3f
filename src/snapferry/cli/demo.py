"""``snapferry demo``: a short, checked walk through the engine in a throwaway region.

It creates a 1 GiB disk, writes about 5 MiB, snapshots (A), changes about 1.5 MiB and clears
64 KiB, snapshots again (B), diffs A and B, restores a new disk from A and reads all of it back.
Two checks decide the outcome: the diff lists exactly the pages written between A and B, and the
restored disk reads back byte for byte what was written before A. Nothing is simulated.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import RenderableType

from snapferry.cli import output as out
from snapferry.engine import Engine
from snapferry.errors import InvalidInput

MiB = 1024 * 1024
DISK_BYTES = 1024**3
TEXT = b"snapferry demo\n\n"
"""16 bytes of compressible text, repeated to fill a region of the disk."""

Writes = list[tuple[int, bytes]]


@dataclass(frozen=True)
class SnapshotStep:
    """A snapshot the demo took: what was written before it and what it added to the store."""

    name: str
    id: str
    written_bytes: int
    store_bytes_added: int
    seconds: float


@dataclass(frozen=True)
class DiffCheck:
    """The diff between snapshots A and B, and whether it lists exactly the pages written."""

    changed_extents: int
    changed_bytes: int
    cleared_extents: int
    cleared_bytes: int
    matches_writes: bool


@dataclass(frozen=True)
class RestoreCheck:
    """A disk restored from snapshot A, read back whole and compared with what A holds."""

    disk_id: str
    snapshot_id: str
    store_bytes_added: int
    bytes_compared: int
    verified: bool


@dataclass(frozen=True)
class Storage:
    """Where the region's data lives, under its data directory."""

    meta_db_bytes: int
    packs: int
    pack_bytes: int
    head_bytes_allocated: int


@dataclass(frozen=True)
class DemoResult:
    data_dir: str
    disk_id: str
    disk_size_bytes: int
    snapshots: list[SnapshotStep]
    diff: DiffCheck
    restore: RestoreCheck
    storage: Storage
    seconds: float

    @property
    def passed(self) -> bool:
        """True if both checks held."""
        return self.diff.matches_writes and self.restore.verified

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "passed": self.passed}


def fresh_dir(data_dir: Path | None) -> Path:
    """data_dir if it is new or empty (raising InvalidInput otherwise), or a new temporary
    directory. The demo never runs inside an existing region."""
    if data_dir is None:
        return Path(tempfile.mkdtemp(prefix="snapferry-demo-"))
    path = data_dir.expanduser()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InvalidInput(
            f"{path} is not a new or empty directory; the demo never runs in an existing region",
            data_dir=str(path),
        )
    return path


def _before_a() -> Writes:
    return [(0, os.urandom(4 * MiB)), (512 * MiB, os.urandom(MiB)), (900 * MiB, TEXT * 16384)]


def _before_b() -> Writes:
    return [(MiB, os.urandom(MiB)), (768 * MiB, os.urandom(MiB // 2)), (512 * MiB, bytes(65536))]


def run(engine: Engine, data_dir: Path) -> DemoResult:
    """Run the demo in the (new) region engine has open at data_dir."""
    started = time.perf_counter()
    disk = engine.create_disk(DISK_BYTES)
    first, second = _before_a(), _before_b()
    a = _snapshot(engine, "A", disk.id, first)
    b = _snapshot(engine, "B", disk.id, second)
    diff = _check_diff(engine, a.id, b.id, second)
    stored = _pack_bytes(engine)
    restored = engine.restore_disk(a.id)
    verified, compared = _reads_back(engine, restored.id, first)
    restore = RestoreCheck(restored.id, a.id, _pack_bytes(engine) - stored, compared, verified)
    return DemoResult(
        str(data_dir),
        disk.id,
        DISK_BYTES,
        [a, b],
        diff,
        restore,
        _storage(engine, data_dir),
        round(time.perf_counter() - started, 3),
    )


def _snapshot(engine: Engine, name: str, disk_id: str, writes: Writes) -> SnapshotStep:
    before = _pack_bytes(engine)
    engine.write_many(disk_id, writes)
    started = time.perf_counter()
    snap = engine.create_snapshot(disk_id)
    seconds = round(time.perf_counter() - started, 3)
    written = sum(len(data) for _, data in writes)
    return SnapshotStep(name, snap.id, written, _pack_bytes(engine) - before, seconds)


def _check_diff(engine: Engine, base: str, target: str, writes: Writes) -> DiffCheck:
    """The diff of base → target, checked against the non-overlapping writes made between."""
    diff = engine.diff(base, target)
    changed = sorted((o, len(d)) for o, d in writes if d != bytes(len(d)))
    cleared = sorted((o, len(d)) for o, d in writes if d == bytes(len(d)))
    return DiffCheck(
        len(diff.changed),
        diff.changed_bytes,
        len(diff.cleared),
        sum(length for _, length in diff.cleared),
        diff.changed == changed and diff.cleared == cleared,
    )


def _reads_back(engine: Engine, disk_id: str, writes: Writes) -> tuple[bool, int]:
    """Whether the whole disk reads as writes over zeros, and how many bytes were compared."""
    pos = 0
    for piece in engine.iter_read(disk_id, 0, DISK_BYTES):
        if piece != _expected(writes, pos, len(piece)):
            return False, pos + len(piece)
        pos += len(piece)
    return True, pos


def _expected(writes: Writes, start: int, length: int) -> bytes:
    buf = bytearray(length)
    for offset, data in writes:
        lo, hi = max(start, offset), min(start + length, offset + len(data))
        if lo < hi:
            buf[lo - start : hi - start] = data[lo - offset : hi - offset]
    return bytes(buf)


def _pack_bytes(engine: Engine) -> int:
    return sum(engine.store.size(key) for key in engine.store.keys("packs/"))


def _storage(engine: Engine, data_dir: Path) -> Storage:
    meta = sum(p.stat().st_size for p in data_dir.glob("meta.db*") if p.is_file())
    heads = sum(p.stat().st_blocks * 512 for p in (data_dir / "heads").rglob("*") if p.is_file())
    packs = sum(1 for _ in engine.store.keys("packs/"))
    return Storage(meta, packs, _pack_bytes(engine), heads)


def view(result: DemoResult) -> Iterable[RenderableType]:
    """The demo's result as tables."""
    a, b = result.snapshots
    diff, restore, storage = result.diff, result.restore, result.storage
    yield out.kv_table(
        f"snapferry demo in {result.data_dir}",
        [
            ("disk", f"{result.disk_id}, {out.size(result.disk_size_bytes)}"),
            *[
                (
                    f"snapshot {s.name}",
                    f"{s.id}: {out.size(s.written_bytes)} written before it, "
                    f"store grew {out.size(s.store_bytes_added)}, sealed in {s.seconds:.2f} s",
                )
                for s in (a, b)
            ],
            (
                f"diff {a.name} → {b.name}",
                f"{diff.changed_extents} changed extent(s), {out.size(diff.changed_bytes)}; "
                f"{diff.cleared_extents} cleared, {out.size(diff.cleared_bytes)}; "
                f"exactly the pages written: {_yes(diff.matches_writes)}",
            ),
            (
                f"restore from {a.name}",
                f"disk {restore.disk_id}: store grew {out.size(restore.store_bytes_added)}; "
                f"{out.size(restore.bytes_compared)} read back equal: {_yes(restore.verified)}",
            ),
        ],
    )
    yield out.grid_table(
        f"where data lives (under {result.data_dir})",
        ("path", "holds", "size"),
        [
            ("meta.db", "catalog: disks, snapshots, block maps", out.size(storage.meta_db_bytes)),
            (
                "store/packs/",
                "chunk versions, compressed and framed",
                f"{storage.packs} pack(s), {out.size(storage.pack_bytes)}",
            ),
            (
                "heads/",
                "pages written since each disk's last snapshot",
                f"{out.size(storage.head_bytes_allocated)} allocated",
            ),
        ],
    )
    verdict = "all checks passed" if result.passed else "a check FAILED"
    yield out.line(
        f"{verdict} in {result.seconds:.2f} s; remove the region with: rm -r {result.data_dir}",
        "bold green" if result.passed else "bold red",
    )


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"
