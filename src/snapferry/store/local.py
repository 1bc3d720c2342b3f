"""LocalStore: one file per object under a root directory."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from snapferry.errors import InvalidInput, ObjectNotFound, StoreError, TransientStoreError
from snapferry.files import O_DIRECT, pwrite_direct
from snapferry.ids import validate_key

TEMP_PREFIX = ".tmp-"
"""Temp files start with this. No key part can start with '.', so they never collide or list."""

# Worth repeating: the device or a network filesystem may recover. Anything else (ENOSPC, EROFS,
# EACCES, ...) needs someone to act first, so a retry loop would only spin.
_TRANSIENT = frozenset(
    {errno.EIO, errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.ETIMEDOUT, errno.ESTALE, errno.ENOMEM}
)
_MISSING = frozenset({errno.ENOENT, errno.ENOTDIR})
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECT = O_DIRECT


class LocalStore:
    """A ChunkStore on a local filesystem: key ``a/b/c`` is the file ``root/a/b/c``.

    Writes go to a ``.tmp-*`` file in the object's directory, are fsynced, then hard-linked into
    place (``os.link`` refuses to replace an existing name, so a racing writer can never overwrite
    an object) and the directory is fsynced. The filesystem must therefore support hard links.
    Objects of a MiB or more are written around the page cache (``O_DIRECT``) where the
    filesystem allows it, and through it where it does not.

    Files are created ``0600`` and directories ``0700``: objects hold disk contents.

    Symlinks are never followed: a key whose path passes through a symlink anywhere below the root
    raises ``InvalidInput`` for every operation and is skipped by ``keys()``. The root itself may be
    a symlink; it is resolved once, here.

    A file and a directory cannot share a name, so a key can't be both an object and a prefix of
    another key followed by '/' (``a`` and ``a/b``); writing the second raises ``StoreError``.
    Directories emptied by ``delete`` are left in place (removing them would race with writers).
    """

    def __init__(self, root: Path | str) -> None:
        path = Path(root)
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.root = path.resolve(strict=True)
        except OSError as exc:
            raise _store_error(exc, "open", str(path)) from exc
        self._root = str(self.root)

    def __repr__(self) -> str:
        return f"LocalStore({self._root!r})"

    @classmethod
    def lost(cls, root: Path | str) -> LocalStore:
        """A store whose root directory is gone (a lost zone), made without creating it: reads
        find nothing and writes fail until ``revive``."""
        store = cls.__new__(cls)
        store.root = Path(os.path.realpath(root))
        store._root = str(store.root)
        return store

    def revive(self) -> None:
        """Recreate the root directory if it was removed (a zone's replaced disk, say). Writes
        into a store whose root is gone fail until then: a missing mount must not be filled."""
        with _os_errors("revive", self._root):
            os.makedirs(self._root, mode=0o700, exist_ok=True)

    def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        """Store data under key unless present. True if written. Durable on return."""
        path = self._path(key)
        view = _byte_view(data)
        with _os_errors("put", key):
            existing = _lstat(path)
            if existing is not None:
                if stat.S_ISREG(existing.st_mode):
                    return False
                raise _conflict(key)
            parent = os.path.dirname(path)
            fd, tmp = self._create_temp(parent, key)
            try:
                try:
                    _write_all(fd, tmp, view)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    st = _lstat(path)
                    if st is not None and stat.S_ISREG(st.st_mode):
                        return False  # another writer won the race; its bytes stay
                    raise _conflict(key) from None
            finally:
                _unlink_quietly(tmp)
            _fsync_dir(parent)
        return True

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        """The object's bytes or ``[start, start+length)`` of them; reads only that range."""
        path = self._path(key)
        _check_range(start, length)
        with _os_errors("get", key):
            try:
                fd = os.open(path, os.O_RDONLY | _O_CLOEXEC | _O_NOFOLLOW)
            except OSError as exc:
                if exc.errno in _MISSING or exc.errno == errno.EISDIR:
                    raise ObjectNotFound(f"no object {key!r}", key=key) from None
                if exc.errno == errno.ELOOP:
                    raise InvalidInput(
                        f"store key {key!r} is a symlink; not followed", key=key
                    ) from None
                raise
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise ObjectNotFound(f"no object {key!r}", key=key)
                end = st.st_size if length is None else min(st.st_size, start + length)
                return _read_range(fd, start, max(0, end - start))
            finally:
                os.close(fd)

    def has(self, key: str) -> bool:
        """True if an object is stored under key."""
        path = self._path(key)
        with _os_errors("has", key):
            st = _lstat(path)
        return st is not None and stat.S_ISREG(st.st_mode)

    def size(self, key: str) -> int:
        """Length of the object in bytes. Raises ``ObjectNotFound`` if absent."""
        path = self._path(key)
        with _os_errors("size", key):
            st = _lstat(path)
        if st is None or not stat.S_ISREG(st.st_mode):
            raise ObjectNotFound(f"no object {key!r}", key=key)
        return st.st_size

    def delete(self, key: str) -> bool:
        """Remove the object. True if it existed. The removal is durable on return."""
        path = self._path(key)
        with _os_errors("delete", key):
            st = _lstat(path)
            if st is None or not stat.S_ISREG(st.st_mode):
                return False
            try:
                os.unlink(path)
            except FileNotFoundError:
                return False  # a concurrent delete won
            _fsync_dir(os.path.dirname(path))
        return True

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with prefix, ascending. Lazy: one directory listing at a time."""
        # Start in the deepest directory the prefix names, so listing one shard stays cheap.
        base = prefix.rpartition("/")[0]
        if base:
            try:
                self._path(base)
            except InvalidInput:
                base = ""  # no key can start with it; the walk below yields nothing
        return self._walk(base, prefix)

    def cleanup_temp(self, older_than: float = 3600.0) -> int:
        """Remove ``.tmp-*`` files left by crashed writers, older than ``older_than`` seconds.

        Returns how many were removed. Younger files may belong to a write in flight, so leave them.
        """
        cutoff = time.time() - older_than
        removed = 0
        for dirpath, _dirs, files in os.walk(self._root, followlinks=False):
            for name in files:
                if not name.startswith(TEMP_PREFIX):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                    if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                        os.unlink(path)
                        removed += 1
                except OSError:
                    continue  # gone already, or not ours to remove; try again next time
        return removed

    def _path(self, key: str) -> str:
        """The file path for key; refuses anything that would resolve through a symlink."""
        path = os.path.join(self._root, validate_key(key))
        if os.path.realpath(path) != path:
            raise InvalidInput(f"store key {key!r} passes through a symlink; not followed", key=key)
        return path

    def _create_temp(self, parent: str, key: str) -> tuple[int, str]:
        tmp = os.path.join(parent, f"{TEMP_PREFIX}{uuid.uuid4().hex}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_NOFOLLOW
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileNotFoundError:
            self._make_dirs(parent, key)
            return os.open(tmp, flags, 0o600), tmp
        except NotADirectoryError as exc:
            raise _conflict(key) from exc

    def _make_dirs(self, directory: str, key: str) -> None:
        """Create directory and missing parents, fsyncing each parent so new entries are durable."""
        parts = os.path.relpath(directory, self._root).split(os.sep)
        current = self._root
        for part in parts:
            parent, current = current, os.path.join(current, part)
            try:
                os.mkdir(current, 0o700)
            except FileExistsError:
                st = _lstat(current)
                if st is None or not stat.S_ISDIR(st.st_mode):
                    raise _conflict(key) from None
            except NotADirectoryError as exc:
                raise _conflict(key) from exc
            else:
                _fsync_dir(parent)

    def _walk(self, rel: str, prefix: str) -> Iterator[str]:
        directory = os.path.join(self._root, rel) if rel else self._root
        try:
            with os.scandir(directory) as it:
                entries = [e for e in it if not e.name.startswith(".") and not e.is_symlink()]
            # A directory sorts as 'name/' so that 'a.x' < 'a/b' < 'a0', as the keys themselves do.
            listed = sorted((e.name + "/" if e.is_dir() else e.name, e) for e in entries)
        except OSError as exc:
            if exc.errno in _MISSING:
                return  # deleted meanwhile, or never there
            raise _store_error(exc, "keys", prefix) from exc
        for sort_name, entry in listed:
            key = f"{rel}/{sort_name}" if rel else sort_name
            if sort_name.endswith("/"):
                if key.startswith(prefix) or prefix.startswith(key):
                    yield from self._walk(key[:-1], prefix)
            elif key.startswith(prefix) and entry.is_file() and _is_key(key):
                yield key


def _check_range(start: int, length: int | None) -> None:
    if start < 0 or (length is not None and length < 0):
        raise InvalidInput(f"invalid range start={start} length={length}: must not be negative")


def _is_key(name: str) -> bool:
    try:
        validate_key(name)
    except InvalidInput:
        return False
    return True


def _byte_view(data: bytes | memoryview) -> memoryview:
    view = memoryview(data)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


WRITE_PIECE = 1024 * 1024
DIRECT_MIN = 1024 * 1024
"""Objects at least this big are written around the page cache (O_DIRECT) where the
filesystem allows it."""


def _write_all(fd: int, path: str, view: memoryview) -> None:
    """Write view as the whole content of the new, empty file path (open for writing as fd).

    The block-aligned bulk of a big object goes through O_DIRECT (``files.pwrite_direct``: it
    saves the kernel ~2 CPU-seconds per GB here). The rest, and everything where O_DIRECT is
    refused, goes through the cache in 1 MiB pieces. The caller fsyncs.
    """
    if len(view) > WRITE_PIECE:
        # Reserve the blocks first: on ext4 here one 64 MiB write(2) into a new file runs at
        # ~0.4 GB/s, the same bytes in 1 MiB pieces after fallocate at ~1.4 GB/s.
        try:
            os.posix_fallocate(fd, 0, len(view))
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
    written = pwrite_direct(path, view, 0) if len(view) >= DIRECT_MIN else 0
    while written < len(view):
        written += os.pwrite(fd, view[written : written + WRITE_PIECE], written)


def _read_range(fd: int, start: int, count: int) -> bytes:
    """Read count bytes at start (fewer only at end of file). pread may return short reads."""
    parts: list[bytes] = []
    got = 0
    while got < count:
        part = os.pread(fd, count - got, start + got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError as exc:
        if exc.errno in _MISSING:
            return None
        raise


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    # A leftover temp file is harmless: never listed, and removed by cleanup_temp().
    with contextlib.suppress(OSError):
        os.unlink(path)


def _conflict(key: str) -> StoreError:
    return StoreError(
        f"put {key!r}: the key's path collides with another object or its directory", key=key
    )


def _store_error(exc: OSError, op: str, key: str) -> StoreError:
    cls = TransientStoreError if exc.errno in _TRANSIENT else StoreError
    code = errno.errorcode.get(exc.errno or 0, "unknown")
    return cls(f"{op} {key!r} failed: {exc.strerror or exc} ({code})", key=key, errno=code)


@contextlib.contextmanager
def _os_errors(op: str, key: str) -> Iterator[None]:
    """Translate OSError into the store's error tree, naming the key."""
    try:
        yield
    except OSError as exc:
        raise _store_error(exc, op, key) from exc
