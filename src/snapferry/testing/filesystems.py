"""Real small filesystems for storage-fault tests: a tmpfs of a given size mounted at a path
(which needs root, as CI runs), remounted read-only and back as a failing disk would be."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


def can_mount() -> str | None:
    """None if this process can mount filesystems, else why not (a test's skip reason)."""
    if os.geteuid() != 0:
        return "mounting a small filesystem needs root (CI runs as root)"
    return None


@contextlib.contextmanager
def small_filesystem(path: Path, size_mib: int) -> Iterator[Path]:
    """A tmpfs of size_mib MiB mounted at path for the block; unmounted after (lazily, should a
    process still hold files there)."""
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", str(path))
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def remount(path: Path, *, read_only: bool) -> None:
    """Make the filesystem at path read-only, or writable again."""
    _mount("-o", f"remount,{'ro' if read_only else 'rw'}", str(path))


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], check=False, capture_output=True, text=True)
    if done.returncode:
        raise OSError(f"mount {' '.join(args)} failed: {done.stderr.strip()}")
