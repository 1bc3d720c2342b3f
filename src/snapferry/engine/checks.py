"""Validation of sizes and ranges at the engine's edge: a refused request changes nothing."""

from __future__ import annotations

from snapferry.errors import InvalidInput
from snapferry.settings import MAX_DISK_BYTES, SECTOR


def check_size(size_bytes: int) -> int:
    """size_bytes if it is a valid disk size, else InvalidInput."""
    if not isinstance(size_bytes, int) or isinstance(size_bytes, bool):
        raise InvalidInput("disk size must be an integer number of bytes")
    if size_bytes <= 0 or size_bytes % SECTOR or size_bytes > MAX_DISK_BYTES:
        raise InvalidInput(
            f"disk size {size_bytes} must be a positive multiple of {SECTOR} bytes "
            f"up to {MAX_DISK_BYTES} (32 TiB)",
            size_bytes=size_bytes,
        )
    return size_bytes


def check_range(offset: int, length: int, size_bytes: int, what: str) -> None:
    """InvalidInput unless ``[offset, offset+length)`` is 512-aligned and inside the disk."""
    for value in (offset, length):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidInput(f"{what} offsets and lengths must be integers, not {value!r}")
    if offset < 0 or length < 0 or offset % SECTOR or length % SECTOR:
        raise InvalidInput(
            f"{what} at offset {offset} of {length} bytes is not aligned to {SECTOR} bytes",
            offset=offset,
            length=length,
        )
    if offset + length > size_bytes:
        raise InvalidInput(
            f"{what} [{offset}, {offset + length}) runs past the end of the disk "
            f"({size_bytes} bytes)",
            offset=offset,
            length=length,
        )
