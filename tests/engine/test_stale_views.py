"""A disk read streamed a chunk at a time stays right while snapshots seal and discard the head
generations it started on: each chunk is the disk's content at some moment of the read, never
zeros from an overlay that was moved away."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from snapferry.engine import Engine
from snapferry.errors import NotFound
from snapferry.settings import CHUNK

SIZE = 16 * CHUNK


def test_a_lazy_disk_read_survives_snapshots_sealing_its_heads(tmp_path: Path) -> None:
    with Engine.open(tmp_path) as engine:
        disk = engine.create_disk(SIZE)
        data = os.urandom(SIZE)
        engine.write(disk.id, 0, data)
        pieces = engine.iter_read(disk.id, 0, SIZE)
        got = [bytes(next(pieces))]  # the read has started on the current head generation
        engine.create_snapshot(disk.id)  # seals that generation and discards its overlay
        got.append(bytes(next(pieces)))
        engine.create_snapshot(disk.id)  # and the next (empty) one
        got += [bytes(p) for p in pieces]
        assert b"".join(got) == data


def test_a_lazy_read_of_a_deleted_disk_fails_rather_than_reading_zeros(tmp_path: Path) -> None:
    with Engine.open(tmp_path) as engine:
        disk = engine.create_disk(SIZE)
        engine.write(disk.id, 0, os.urandom(SIZE))
        pieces = engine.iter_read(disk.id, 0, SIZE)
        next(pieces)
        engine.delete_disk(disk.id)
        with pytest.raises(NotFound):
            list(pieces)
