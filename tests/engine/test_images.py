"""Raw images in and out: holes and zero pages are skipped, content round-trips exactly."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from snapferry.engine import Engine
from snapferry.engine.images import export_image, import_image
from snapferry.errors import InvalidInput
from snapferry.settings import PAGE

TIB = 1024**4
MIB = 1024**2


def sparse_image(path: Path, size: int, extents: list[tuple[int, bytes]]) -> None:
    with path.open("wb") as f:
        f.truncate(size)
        for offset, data in extents:
            f.seek(offset)
            f.write(data)


def file_sha(path: Path, extents: list[tuple[int, int]]) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for offset, length in extents:
            f.seek(offset)
            digest.update(f.read(length))
    return digest.hexdigest()


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    with Engine.open(tmp_path / "region") as opened:
        yield opened


def test_a_sparse_terabyte_image_reads_only_its_data(engine: Engine, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    block = rng.integers(1, 256, 3 * MIB, dtype=np.uint8).tobytes()
    # an extent with zero pages inside it: they are read but never stored
    holey = block[: 2 * PAGE] + bytes(4 * PAGE) + block[: 2 * PAGE]
    extents = [(0, block), (TIB // 2 + 12 * PAGE, holey), (TIB - 2 * MIB, block[: 2 * MIB])]
    image = tmp_path / "big.img"
    sparse_image(image, TIB, extents)
    seen: list[tuple[int, int]] = []

    disk, report = import_image(
        engine, image, progress=lambda done, total: seen.append((done, total))
    )

    data_bytes = sum(len(d) for _, d in extents)
    assert disk.size_bytes == TIB
    assert data_bytes <= report.bytes_read <= data_bytes + 2 * len(extents) * PAGE
    assert report.bytes_written == data_bytes - 4 * PAGE
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1][1] == TIB
    for offset, data in extents:
        assert engine.read(disk.id, offset, len(data)) == data
    assert engine.read(disk.id, TIB // 4, MIB) == bytes(MIB)
    snap = engine.create_snapshot(disk.id)
    stored = {(o, n) for o, n in engine.allocated(snap.id)}
    holey_at = TIB // 2 + 12 * PAGE
    assert stored == {
        (0, 3 * MIB),
        (holey_at, 2 * PAGE),
        (holey_at + 6 * PAGE, 2 * PAGE),
        (TIB - 2 * MIB, 2 * MIB),
    }


def test_export_writes_a_sparse_file_equal_to_the_snapshot(engine: Engine, tmp_path: Path) -> None:
    size = 64 * MIB
    disk = engine.create_disk(size)
    rng = np.random.default_rng(6)
    writes = [(0, rng.bytes(PAGE)), (20 * MIB, rng.bytes(3 * MIB)), (size - PAGE, rng.bytes(PAGE))]
    engine.write_many(disk.id, writes)
    snap = engine.create_snapshot(disk.id)
    engine.write(disk.id, 0, b"\x07" * PAGE)  # after the snapshot: not exported
    out = tmp_path / "out.img"

    report = export_image(engine, engine.snapshot_view(snap.id), out)

    assert out.stat().st_size == size
    assert report.bytes_written == sum(len(d) for _, d in writes)
    assert out.stat().st_blocks * 512 <= report.bytes_written + 1 * MIB
    whole = [(0, size)]
    want = hashlib.sha256(engine.read_snapshot(snap.id, 0, size)).hexdigest()
    assert file_sha(out, whole) == want
    again, _ = import_image(engine, out)
    assert hashlib.sha256(engine.read(again.id, 0, size)).hexdigest() == want


def test_an_image_whose_size_is_not_whole_sectors_is_padded(engine: Engine, tmp_path: Path) -> None:
    image = tmp_path / "odd.img"
    image.write_bytes(b"\x01" * 1000)
    disk, _ = import_image(engine, image)
    assert disk.size_bytes == 1024
    assert engine.read(disk.id, 0, 1024) == b"\x01" * 1000 + bytes(24)


@pytest.mark.parametrize("name", ["missing.img", "empty.img"])
def test_unusable_images_are_refused_and_create_nothing(
    engine: Engine, tmp_path: Path, name: str
) -> None:
    (tmp_path / "empty.img").write_bytes(b"")
    with pytest.raises(InvalidInput):
        import_image(engine, tmp_path / name)
    assert engine.list_disks() == []


def test_an_image_larger_than_the_asked_size_is_refused(engine: Engine, tmp_path: Path) -> None:
    image = tmp_path / "x.img"
    image.write_bytes(os.urandom(4096))
    with pytest.raises(InvalidInput, match="does not fit"):
        import_image(engine, image, size_bytes=2048)
    assert engine.list_disks() == []
