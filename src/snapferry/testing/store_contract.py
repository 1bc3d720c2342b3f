"""The ChunkStore contract as one pytest suite, run against every backend and wrapper.

Use it by subclassing::

    class TestLocalStore(ChunkStoreContract):
        def make_store(self, tmp_path: Path) -> ChunkStore:
            return LocalStore(tmp_path / "store")

Keys used here never put an object at a name that is also a directory of other keys (``a`` and
``a/b``), which file-per-object backends cannot hold.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from snapferry.errors import InvalidInput, ObjectNotFound
from snapferry.store.base import ChunkStore

MiB = 1024 * 1024

INVALID_KEYS = [
    "",
    "/abs",
    "../x",
    "a/../b",
    "a//b",
    "a/",
    "a/.hidden",
    ".tmp-x",
    ".",
    "A",
    "a/B",
    "a b",
    "a\\b",
    "a\x00b",
    "x" * 513,
]


def _blob(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


class ChunkStoreContract:
    """What every ChunkStore must do. Subclasses implement ``make_store``; tests get ``store``."""

    def make_store(self, tmp_path: Path) -> ChunkStore:
        """A new, empty store; tmp_path is a fresh directory the store may use."""
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> ChunkStore:
        return self.make_store(tmp_path)

    def test_is_a_chunk_store(self, store: ChunkStore) -> None:
        assert isinstance(store, ChunkStore)

    def test_new_store_is_empty(self, store: ChunkStore) -> None:
        assert list(store.keys()) == []
        assert not store.has("nothing")

    def test_put_then_get_roundtrips(self, store: ChunkStore) -> None:
        assert store.put_if_absent("chunks/ab/abcdef", b"hello world") is True
        got = store.get("chunks/ab/abcdef")
        assert got == b"hello world"
        assert type(got) is bytes
        assert store.has("chunks/ab/abcdef")
        assert store.size("chunks/ab/abcdef") == 11

    def test_second_put_returns_false_and_keeps_first_bytes(self, store: ChunkStore) -> None:
        assert store.put_if_absent("k", b"first") is True
        assert store.put_if_absent("k", b"second, longer") is False
        assert store.put_if_absent("k", b"first") is False
        assert store.get("k") == b"first"
        assert store.size("k") == 5

    @pytest.mark.parametrize(
        ("start", "length", "expected"),
        [
            (0, None, b"0123456789"),
            (2, 3, b"234"),
            (7, None, b"789"),
            (0, 10, b"0123456789"),
            (8, 100, b"89"),
            (9, 1, b"9"),
            (10, None, b""),
            (10, 5, b""),
            (15, 5, b""),
            (4, 0, b""),
            (0, 0, b""),
        ],
    )
    def test_ranged_get(
        self, store: ChunkStore, start: int, length: int | None, expected: bytes
    ) -> None:
        store.put_if_absent("digits", b"0123456789")
        assert store.get("digits", start, length) == expected

    @pytest.mark.parametrize(("start", "length"), [(-1, None), (-1, 2), (0, -1), (3, -5)])
    def test_negative_range_is_invalid(
        self, store: ChunkStore, start: int, length: int | None
    ) -> None:
        store.put_if_absent("digits", b"0123456789")
        with pytest.raises(InvalidInput):
            store.get("digits", start, length)

    def test_missing_key(self, store: ChunkStore) -> None:
        with pytest.raises(ObjectNotFound):
            store.get("missing")
        with pytest.raises(ObjectNotFound):
            store.get("missing/deeper", 1, 2)
        with pytest.raises(ObjectNotFound):
            store.size("missing")
        assert store.has("missing") is False
        assert store.delete("missing") is False

    def test_delete(self, store: ChunkStore) -> None:
        store.put_if_absent("a/b", b"x")
        store.put_if_absent("a/c", b"y")
        assert store.delete("a/b") is True
        assert store.has("a/b") is False
        with pytest.raises(ObjectNotFound):
            store.get("a/b")
        assert store.delete("a/b") is False
        assert list(store.keys()) == ["a/c"]

    def test_put_after_delete_writes_again(self, store: ChunkStore) -> None:
        store.put_if_absent("k", b"old")
        store.delete("k")
        assert store.put_if_absent("k", b"new") is True
        assert store.get("k") == b"new"

    def test_keys_sorted_and_filtered_by_prefix(self, store: ChunkStore) -> None:
        # '-' < '.' < '/' < '0': a naive directory walk would list 'a/b' before 'a.x'.
        keys = ["b", "a/b", "a.x", "a-b", "a0", "a/c/d", "a/b0", "ab/z", "z/y/x/w"]
        for k in keys:
            store.put_if_absent(k, k.encode())
        assert list(store.keys()) == sorted(keys)
        assert list(store.keys("")) == sorted(keys)
        assert list(store.keys("a")) == sorted(k for k in keys if k.startswith("a"))
        assert list(store.keys("a/")) == ["a/b", "a/b0", "a/c/d"]
        assert list(store.keys("a/b")) == ["a/b", "a/b0"]
        assert list(store.keys("a/c/")) == ["a/c/d"]
        assert list(store.keys("z/y")) == ["z/y/x/w"]
        assert list(store.keys("nope")) == []
        assert list(store.keys("a/nope/")) == []

    def test_keys_with_a_prefix_no_key_can_have(self, store: ChunkStore) -> None:
        store.put_if_absent("a/b", b"x")
        for prefix in ["../", "/", "A", "a//", "../a"]:
            assert list(store.keys(prefix)) == []

    @pytest.mark.parametrize("key", INVALID_KEYS)
    def test_invalid_keys_are_refused_and_store_nothing(self, store: ChunkStore, key: str) -> None:
        with pytest.raises(InvalidInput):
            store.put_if_absent(key, b"data")
        with pytest.raises(InvalidInput):
            store.get(key)
        with pytest.raises(InvalidInput):
            store.has(key)
        with pytest.raises(InvalidInput):
            store.size(key)
        with pytest.raises(InvalidInput):
            store.delete(key)
        assert list(store.keys()) == []

    def test_empty_object(self, store: ChunkStore) -> None:
        assert store.put_if_absent("empty", b"") is True
        assert store.has("empty")
        assert store.size("empty") == 0
        assert store.get("empty") == b""
        assert store.get("empty", 0, 10) == b""
        assert store.get("empty", 3) == b""
        assert list(store.keys()) == ["empty"]
        assert store.put_if_absent("empty", b"now not empty") is False
        assert store.get("empty") == b""

    def test_memoryview_input_is_copied(self, store: ChunkStore) -> None:
        buffer = bytearray(b"..payload..")
        assert store.put_if_absent("mv", memoryview(buffer)[2:9]) is True
        buffer[:] = b"X" * len(buffer)  # the caller reuses its buffer
        assert store.get("mv") == b"payload"
        assert store.size("mv") == 7

    def test_racing_put_if_absent_has_one_winner(self, store: ChunkStore) -> None:
        writers = 8
        blobs = [_blob(256 * 1024, seed) for seed in range(writers)]
        barrier = threading.Barrier(writers)
        results: list[bool | BaseException] = [False] * writers

        def write(i: int) -> None:
            barrier.wait()
            try:
                results[i] = store.put_if_absent("race/one/key", blobs[i])
            except BaseException as exc:
                results[i] = exc

        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(isinstance(r, bool) for r in results), results
        assert results.count(True) == 1
        assert store.get("race/one/key") == blobs[results.index(True)]
        assert list(store.keys()) == ["race/one/key"]

    def test_concurrent_puts_of_new_keys_in_one_new_directory(self, store: ChunkStore) -> None:
        writers = 8
        barrier = threading.Barrier(writers)
        errors: list[BaseException] = []

        def write(i: int) -> None:
            barrier.wait()
            try:
                store.put_if_absent(f"new/dir/k{i}", bytes([i]) * 100)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert list(store.keys("new/")) == [f"new/dir/k{i}" for i in range(writers)]
        assert all(store.get(f"new/dir/k{i}") == bytes([i]) * 100 for i in range(writers))

    @pytest.mark.slow
    def test_large_object_ranges(self, store: ChunkStore) -> None:
        data = _blob(9 * MiB, seed=42)
        assert store.put_if_absent("big/object", data) is True
        assert store.size("big/object") == len(data)
        ranges = [
            (0, 1),
            (4 * MiB - 1, 2),
            (4 * MiB, 4 * MiB),
            (1_234_567, 3 * MiB + 17),
            (9 * MiB - 10, 100),
            (9 * MiB, 1),
        ]
        for start, length in ranges:
            assert store.get("big/object", start, length) == data[start : start + length]
        assert store.get("big/object", 8 * MiB) == data[8 * MiB :]
        assert store.get("big/object") == data
