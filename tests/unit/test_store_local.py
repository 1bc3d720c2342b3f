"""LocalStore specifics beyond the shared contract: crash leftovers, symlinks, OS failures."""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import time
from pathlib import Path

import pytest

from snapferry import files
from snapferry.errors import InvalidInput, ObjectNotFound, StoreError, TransientStoreError
from snapferry.store import LocalStore, MemoryStore, open_store
from snapferry.store import local as local_module
from snapferry.testing.direct_io import direct_io_works


def temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(".tmp-*"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(root: Path) -> LocalStore:
    return LocalStore(root)


def test_object_is_a_plain_file_under_root(store: LocalStore, root: Path) -> None:
    store.put_if_absent("chunks/ab/abc", b"data")
    assert (root / "chunks" / "ab" / "abc").read_bytes() == b"data"


def test_no_temp_files_left_after_puts(store: LocalStore, root: Path) -> None:
    store.put_if_absent("a/b", b"1")
    store.put_if_absent("a/b", b"2")  # the losing write cleans up too
    store.put_if_absent("c", b"")
    assert temp_files(root) == []


def test_crash_leftover_is_not_listed_and_does_not_block_put(store: LocalStore, root: Path) -> None:
    (root / "chunks").mkdir(parents=True)
    leftover = root / "chunks" / ".tmp-deadbeef"
    leftover.write_bytes(b"half a chunk")
    assert list(store.keys()) == []
    assert store.put_if_absent("chunks/x", b"whole") is True
    assert list(store.keys()) == ["chunks/x"]
    assert store.get("chunks/x") == b"whole"


def test_cleanup_temp_removes_only_old_leftovers(store: LocalStore, root: Path) -> None:
    (root / "a").mkdir(parents=True)
    old, fresh = root / "a" / ".tmp-old", root / ".tmp-fresh"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    store.put_if_absent("a/kept", b"object")
    assert store.cleanup_temp() == 1
    assert temp_files(root) == [fresh]
    assert store.get("a/kept") == b"object"
    assert store.cleanup_temp(older_than=0) == 1
    assert temp_files(root) == []


def test_objects_survive_reopening(root: Path) -> None:
    LocalStore(root).put_if_absent("snapshots/s1/manifest", b"sealed")
    reopened = LocalStore(root)
    assert reopened.get("snapshots/s1/manifest") == b"sealed"
    assert list(reopened.keys()) == ["snapshots/s1/manifest"]


def test_root_may_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    LocalStore(tmp_path / "link").put_if_absent("k", b"v")
    assert (real / "k").read_bytes() == b"v"


def test_symlinked_directory_inside_root_is_refused(store: LocalStore, root: Path) -> None:
    """Decision: a key whose path passes through a symlink is InvalidInput, for every operation
    and whichever way the link points; keys() skips it. Nothing is read or written through it."""
    outside = root.parent / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"not yours")
    (root / "evil").symlink_to(outside)
    for call in (
        lambda: store.get("evil/secret"),
        lambda: store.has("evil/secret"),
        lambda: store.size("evil/secret"),
        lambda: store.delete("evil/secret"),
        lambda: store.put_if_absent("evil/new", b"planted"),
    ):
        with pytest.raises(InvalidInput):
            call()
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"not yours"
    assert list(store.keys()) == []
    assert list(store.keys("evil/")) == []


def test_symlinked_object_is_refused(store: LocalStore, root: Path) -> None:
    outside = root.parent / "outside-file"
    outside.write_bytes(b"not yours")
    (root / "link").symlink_to(outside)
    with pytest.raises(InvalidInput):
        store.get("link")
    with pytest.raises(InvalidInput):
        store.delete("link")
    assert outside.exists()
    assert list(store.keys()) == []


def test_key_colliding_with_a_directory_is_a_store_error(store: LocalStore) -> None:
    store.put_if_absent("a/b", b"x")
    with pytest.raises(StoreError, match="collides"):
        store.put_if_absent("a", b"y")
    with pytest.raises(StoreError, match="collides"):
        store.put_if_absent("a/b/c", b"z")
    assert store.has("a") is False
    with pytest.raises(ObjectNotFound):
        store.get("a")
    with pytest.raises(ObjectNotFound):
        store.size("a")
    assert store.delete("a") is False
    assert list(store.keys()) == ["a/b"]


def test_disk_full_is_a_permanent_store_error_naming_the_key(
    store: LocalStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, path: str, view: memoryview) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(local_module, "_write_all", full)
    with pytest.raises(StoreError, match="chunks/k") as caught:
        store.put_if_absent("chunks/k", b"data")
    assert not isinstance(caught.value, TransientStoreError)
    assert caught.value.details["errno"] == "ENOSPC"
    assert store.has("chunks/k") is False
    assert temp_files(root) == []


def test_io_error_on_read_is_transient(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.put_if_absent("k", b"data")

    def broken(fd: int, start: int, count: int) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(local_module, "_read_range", broken)
    with pytest.raises(TransientStoreError, match="'k'"):
        store.get("k")


def test_ranged_get_reads_only_the_range(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put_if_absent("big", bytes(1024 * 1024))
    asked: list[int] = []
    real_pread = os.pread

    def pread(fd: int, count: int, offset: int) -> bytes:
        asked.append(count)
        return real_pread(fd, count, offset)

    monkeypatch.setattr(os, "pread", pread)  # os is the module LocalStore calls
    assert store.get("big", 4096, 100) == bytes(100)
    assert asked == [100]


@pytest.mark.parametrize(
    ("url", "expected_root"),
    [("file://{tmp}/s", "{tmp}/s"), ("{tmp}/s", "{tmp}/s")],
)
def test_open_store_local(tmp_path: Path, url: str, expected_root: str) -> None:
    store = open_store(url.format(tmp=tmp_path))
    assert isinstance(store, LocalStore)
    assert store.root == Path(expected_root.format(tmp=tmp_path)).resolve()


def test_open_store_memory() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)


@pytest.mark.parametrize("url", ["", "s3://bucket", "file://relative/path", "memory://x"])
def test_open_store_refuses_other_urls(url: str) -> None:
    with pytest.raises(InvalidInput):
        open_store(url)


BIG = [local_module.DIRECT_MIN, local_module.DIRECT_MIN + 1, 5 * 1024 * 1024 + 4095]


@pytest.mark.parametrize("size", BIG)
@pytest.mark.parametrize("source", ["bytes", "page-aligned", "offset"])
def test_big_objects_are_stored_exactly_around_the_page_cache(
    store: LocalStore, root: Path, size: int, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_pwrite, direct = os.pwrite, []

    def spy(fd: int, data: memoryview, offset: int) -> int:
        written = real_pwrite(fd, data, offset)
        if fcntl.fcntl(fd, fcntl.F_GETFL) & local_module._O_DIRECT:
            direct.append(written)
        return written

    monkeypatch.setattr(local_module.os, "pwrite", spy)
    data = os.urandom(size)
    if source == "bytes":
        view = memoryview(data)
    else:  # a page-aligned buffer is written without a copy; one off by a byte is copied
        mapped = mmap.mmap(-1, size + 1)
        at = 0 if source == "page-aligned" else 1
        mapped[at : at + size] = data
        view = memoryview(mapped)[at : at + size]
    assert store.put_if_absent("big", view)
    assert store.get("big") == data
    assert store.get("big", size - 5000, 5000) == data[-5000:]
    assert temp_files(root) == []
    if direct_io_works(root):  # all but the unaligned tail went around the cache
        assert sum(direct) == size - size % files.DIRECT_ALIGN


@pytest.mark.parametrize("refusal", ["open", "write"])
def test_big_objects_go_through_the_cache_where_direct_io_is_refused(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch, refusal: str
) -> None:
    real_open, real_pwrite = os.open, os.pwrite

    def no_direct_open(path: str, flags: int, *args: int) -> int:
        if flags & local_module._O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    def no_direct_write(fd: int, data: memoryview, offset: int) -> int:
        if (
            offset == 0
            and len(data) % 4096 == 0
            and fcntl.fcntl(fd, fcntl.F_GETFL) & (local_module._O_DIRECT)
        ):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    if refusal == "open":
        monkeypatch.setattr(local_module.os, "open", no_direct_open)
    else:
        monkeypatch.setattr(local_module.os, "pwrite", no_direct_write)
    data = os.urandom(3 * 1024 * 1024 + 17)
    assert store.put_if_absent("big", data)
    assert store.get("big") == data
