"""Geometry and limits every layer agrees on. Changing any of these changes the storage format."""

from __future__ import annotations

import os
from pathlib import Path

SECTOR = 512
"""Writes, reads and disk sizes are aligned to this many bytes."""

PAGE = 4096
"""Unit of change tracking, diffs and wire deltas. A sector write dirties its whole page."""

CHUNK = 4 * 1024 * 1024
"""Unit of addressing, block-map entries and transfer planning."""

PAGES_PER_CHUNK = CHUNK // PAGE
BITMAP_BYTES = PAGES_PER_CHUNK // 8
"""A page bitmap of one chunk, packed big-endian per byte as numpy.packbits writes it."""

MAX_DISK_BYTES = 32 * 1024**4
"""Largest disk: 32 TiB, the largest managed disk Azure offers."""

SEGMENT_CHUNKS = 4096
"""Block maps are stored in segments of this many chunks (16 GiB of disk per segment row)."""

PACK_TARGET_BYTES = 64 * 1024 * 1024
"""A pack is closed once its frames reach this size."""

OVERLAY_SPAN = 1024**4
"""A disk head's overlay is split into sparse files of this many bytes (ext4 caps files at 16 TiB)."""


def default_data_dir() -> Path:
    """Where ``snapferry up`` keeps its cloud and where the CLI looks for ``cloud.json``:
    ``$SNAPFERRY_HOME``, else ``$XDG_DATA_HOME/snapferry`` (``~/.local/share/snapferry``).
    Region ``R`` of the embedded cloud lives in ``regions/R`` under it."""
    env = os.environ.get("SNAPFERRY_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or "~/.local/share"
    return Path(base).expanduser() / "snapferry"
