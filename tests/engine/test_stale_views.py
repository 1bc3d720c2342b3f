"""Reads and partial-page writes stay right while snapshots seal and discard the head generations
they started on: a streamed chunk, or the rest of a page a 512-byte write fills in, is the
disk's content at some moment, never zeros from an overlay that was moved away."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

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


def test_a_partial_page_write_while_its_page_is_sealed_keeps_the_rest_of_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 512-byte write fills in the rest of its 4 KiB page from the disk's current content.
    Fault injection: the snapshot holding that page finishes sealing (in another thread, and its
    head's overlay is discarded) right after the write has taken its view of the disk."""
    with Engine.open(tmp_path) as engine:
        disk = engine.create_disk(SIZE)
        engine.write(disk.id, 0, b"\xaa" * 4096)
        snapshot = engine.freeze_snapshot(disk.id)  # page 0 lives in the frozen head now
        real_view = engine._disk_view
        sealed: list[bool] = []

        def view_then_seal(disk_id: str, head: Any = None) -> Any:
            view = real_view(disk_id, head)
            if not sealed:
                sealed.append(True)
                sealer = threading.Thread(target=engine.seal_pending, args=(disk_id,))
                sealer.start()
                sealer.join()
            return view

        monkeypatch.setattr(engine, "_disk_view", view_then_seal)
        engine.write(disk.id, 512, bytes(512))
        monkeypatch.setattr(engine, "_disk_view", real_view)
        assert sealed
        assert engine.read(disk.id, 0, 4096) == b"\xaa" * 512 + bytes(512) + b"\xaa" * 3072
        assert engine.read_snapshot(snapshot.id, 0, 4096) == b"\xaa" * 4096
