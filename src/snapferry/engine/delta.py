"""The plan of a copy between regions: which pages of which chunks the target must set
(changed) or zero (cleared), and which of them travel as the frames they are stored in.

A ``ChunkDelta`` is computed from metadata alone by the source (``Engine.plan_copy``): the pages
changed between an *anchor* snapshot and the copied one, or every non-zero page when there is no
anchor. Bitmaps are packed, ``(n, 128)`` per array, chunks sorted and unique. A ``CopyPlan`` adds,
per chunk, the stored frame (a version bundle, by its BLAKE3 id) that holds exactly the chunk's
content as one full version, when shipping that frame as it is costs no more than its pages:
such chunks travel verbatim (no decoding at the source, no encoding at the target) and the others
as pages. ``encode`` gives a compact binary form (zstd: delta bitmaps are mostly zero bytes) that
travels and is stored as it is.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import zstandard

from snapferry.engine import bitmaps
from snapferry.errors import IntegrityError
from snapferry.settings import BITMAP_BYTES, PAGE

_HEAD = struct.Struct("<4sQ")
_MAGIC = b"SFCD"
_PLAN_HEAD = struct.Struct("<4sQQ")
_PLAN_MAGIC = b"SFCP"
NO_FRAME = -1
MAX_FRAMES = 64
"""Frames one request may ask for."""
MAX_DECODED = 1 << 34
"""The most a plan may decode to (a 32 TiB disk's delta is about 2.2 GB)."""


def _bounded(blob: bytes, max_bytes: int) -> bytes:
    """zstd-decompress blob if it declares (or yields) at most max_bytes; ValueError else."""
    declared = zstandard.frame_content_size(blob)
    if declared > max_bytes:
        raise ValueError(f"it would decode to {declared} bytes")
    return zstandard.ZstdDecompressor().decompress(blob, max_output_size=max_bytes)


@dataclass(frozen=True)
class ChunkDelta:
    """Pages to set (``changed``) and to zero (``cleared``), chunk by chunk."""

    chunks: npt.NDArray[np.uint64]
    changed: bitmaps.Packed
    cleared: bitmaps.Packed

    @classmethod
    def empty(cls) -> ChunkDelta:
        none = np.zeros((0, BITMAP_BYTES), dtype=np.uint8)
        return cls(np.zeros(0, dtype=np.uint64), none, none.copy())

    def __len__(self) -> int:
        return len(self.chunks)

    @property
    def changed_pages(self) -> int:
        return int(bitmaps.popcount(self.changed).sum())

    @property
    def changed_bytes(self) -> int:
        """Bytes of data the delta carries (cleared pages carry none)."""
        return self.changed_pages * PAGE

    def take(self, rows: npt.NDArray[np.int64] | slice) -> ChunkDelta:
        return ChunkDelta(self.chunks[rows], self.changed[rows], self.cleared[rows])

    def without(self, chunks: npt.NDArray[np.uint64]) -> ChunkDelta:
        """The delta minus the given chunks (those a resumed copy already holds)."""
        return self.take(np.flatnonzero(~np.isin(self.chunks, chunks)))

    def batches(self, max_pages: int) -> Iterator[ChunkDelta]:
        """Consecutive pieces of about ``max_pages`` changed pages each (a chunk never splits)."""
        counts = np.cumsum(bitmaps.popcount(self.changed))
        start = 0
        while start < len(self.chunks):
            base = int(counts[start - 1]) if start else 0
            end = max(int(np.searchsorted(counts, base + max_pages, side="right")), start + 1)
            yield self.take(slice(start, end))
            start = end

    def encode(self) -> bytes:
        raw = b"".join(
            [
                _HEAD.pack(_MAGIC, len(self.chunks)),
                self.chunks.astype("<u8").tobytes(),
                np.ascontiguousarray(self.changed).tobytes(),
                np.ascontiguousarray(self.cleared).tobytes(),
            ]
        )
        return zstandard.ZstdCompressor(level=3).compress(raw)

    @classmethod
    def decode(cls, blob: bytes, max_bytes: int = MAX_DECODED) -> ChunkDelta:
        """The delta encoded in blob (decoding to at most ``max_bytes``); IntegrityError if it
        is not one."""
        try:
            raw = _bounded(blob, max_bytes)
            magic, n = _HEAD.unpack_from(raw)
            if magic != _MAGIC or len(raw) != _HEAD.size + n * (8 + 2 * BITMAP_BYTES):
                raise ValueError("bad header")
        except (ValueError, struct.error, zstandard.ZstdError) as exc:
            raise IntegrityError(f"a copy plan is unreadable: {exc}") from None
        pos = _HEAD.size
        chunks = np.frombuffer(raw, "<u8", n, pos).astype(np.uint64)
        pos += 8 * n
        changed = np.frombuffer(raw, np.uint8, n * BITMAP_BYTES, pos).reshape(n, BITMAP_BYTES)
        pos += n * BITMAP_BYTES
        cleared = np.frombuffer(raw, np.uint8, n * BITMAP_BYTES, pos).reshape(n, BITMAP_BYTES)
        if len(chunks) > 1 and not bool(np.all(chunks[1:] > chunks[:-1])):
            raise IntegrityError("a copy plan's chunks are not sorted")
        return cls(chunks, changed.copy(), cleared.copy())


@dataclass(frozen=True)
class CopyPlan:
    """A delta, and for each of its chunks the index of the frame (in ``oids``/``lengths``:
    BLAKE3 ids and stored sizes) that carries it, or ``NO_FRAME`` (its pages travel)."""

    delta: ChunkDelta
    frame: npt.NDArray[np.int64]
    oids: npt.NDArray[np.uint8]
    lengths: npt.NDArray[np.int64]

    @classmethod
    def pages_only(cls, delta: ChunkDelta) -> CopyPlan:
        return cls(
            delta,
            np.full(len(delta), NO_FRAME, dtype=np.int64),
            np.zeros((0, 32), dtype=np.uint8),
            np.zeros(0, dtype=np.int64),
        )

    def encode(self) -> bytes:
        raw = b"".join(
            [
                _PLAN_HEAD.pack(_PLAN_MAGIC, len(self.frame), len(self.lengths)),
                self.frame.astype("<i8").tobytes(),
                np.ascontiguousarray(self.oids, dtype=np.uint8).tobytes(),
                self.lengths.astype("<i8").tobytes(),
            ]
        )
        delta = self.delta.encode()
        return (
            struct.pack("<Q", len(delta)) + delta + zstandard.ZstdCompressor(level=3).compress(raw)
        )

    @classmethod
    def decode(cls, blob: bytes) -> CopyPlan:
        """The plan encoded in blob; IntegrityError if it is not one."""
        try:
            (n_delta,) = struct.unpack_from("<Q", blob)
            delta = ChunkDelta.decode(blob[8 : 8 + n_delta])
            raw = _bounded(blob[8 + n_delta :], MAX_DECODED)
            magic, n, m = _PLAN_HEAD.unpack_from(raw)
            if (
                magic != _PLAN_MAGIC
                or n != len(delta)
                or len(raw) != _PLAN_HEAD.size + 8 * n + 40 * m
            ):
                raise ValueError("bad header")
        except (ValueError, struct.error, zstandard.ZstdError) as exc:
            raise IntegrityError(f"a copy plan is unreadable: {exc}") from None
        pos = _PLAN_HEAD.size
        frame = np.frombuffer(raw, "<i8", n, pos).astype(np.int64)
        pos += 8 * n
        oids = np.frombuffer(raw, np.uint8, 32 * m, pos).reshape(m, 32).copy()
        pos += 32 * m
        lengths = np.frombuffer(raw, "<i8", m, pos).astype(np.int64)
        if len(frame) and (frame.max(initial=NO_FRAME) >= m or frame.min(initial=0) < NO_FRAME):
            raise IntegrityError("a copy plan names a frame it does not list")
        return cls(delta, frame, oids, lengths)

    def pieces(
        self, held: npt.NDArray[np.uint64], max_pages: int, max_frame_bytes: int
    ) -> Iterator[Piece]:
        """What is left to move when the target holds ``held``: pieces of pages (about
        ``max_pages`` each) and batches of frames (about ``max_frame_bytes`` each, at most
        ``MAX_FRAMES``)."""
        todo = ~np.isin(self.delta.chunks, held)
        pages = self.delta.take(np.flatnonzero(todo & (self.frame == NO_FRAME)))
        for piece in pages.batches(max_pages):
            yield Piece(piece, [])
        framed = np.flatnonzero(todo & (self.frame != NO_FRAME))
        wanted = np.unique(self.frame[framed])
        batch: list[int] = []
        size = 0
        for f in wanted.tolist():
            batch.append(f)
            size += int(self.lengths[f])
            if size >= max_frame_bytes or len(batch) >= MAX_FRAMES:
                yield self._frame_piece(framed, batch)
                batch, size = [], 0
        if batch:
            yield self._frame_piece(framed, batch)

    def _frame_piece(self, framed: npt.NDArray[np.int64], batch: list[int]) -> Piece:
        rows = framed[np.isin(self.frame[framed], batch)]
        frame_of = [bytes(self.oids[f]) for f in self.frame[rows].tolist()]
        return Piece(self.delta.take(rows), [bytes(self.oids[f]) for f in batch], frame_of)


@dataclass(frozen=True)
class Piece:
    """One step of a transfer: chunks of the delta, carried as pages (``oids`` empty) or by the
    frames with those ids (``frame_of``: the id of each chunk's frame, in delta order)."""

    delta: ChunkDelta
    oids: list[bytes]
    frame_of: list[bytes] = field(default_factory=list)

    @property
    def stored_bytes(self) -> int:
        return self.delta.changed_bytes
