"""Runs of views (what lets a pack be stored from a peer's answer without a copy) and the
buffers answers are received into."""

from __future__ import annotations

import gc
import mmap
import threading

from snapferry.buffers import AlignedBuffers, address, run_of


def test_views_end_to_end_in_one_buffer_are_one_run() -> None:
    buffer = mmap.mmap(-1, 1 << 16)
    buffer[:] = bytes(range(256)) * 256
    whole = memoryview(buffer)
    parts = [whole[100:200], whole[200:200], whole[200:1000], whole[1000:5000]]
    run = run_of(parts)
    assert run is not None
    assert bytes(run) == bytes(whole[100:5000])
    assert address(run) == address(whole) + 100


def test_anything_else_is_no_run() -> None:
    buffer = bytearray(1 << 12)
    whole = memoryview(buffer)
    other = memoryview(bytearray(1 << 12))
    assert run_of([]) is None
    assert run_of([whole[0:10], whole[11:20]]) is None  # a gap
    assert run_of([whole[10:20], whole[0:10]]) is None  # out of order
    assert run_of([whole[0:10], other[10:20]]) is None  # two buffers
    assert run_of([b"abc", b"def"]) is None  # bytes are never known to be adjacent


def test_received_buffers_are_page_aligned_and_reused_only_when_unreferenced() -> None:
    buffers = AlignedBuffers(keep=2, size=1 << 20)
    first = buffers.take(5000)
    assert len(first) == 5000 and address(first) % mmap.PAGESIZE == 0
    held = first[100:200]
    del first
    gc.collect()
    second = buffers.take(5000)
    assert address(second) != address(held) - 100  # still referred to: not handed out again
    where = address(held) - 100
    del held
    gc.collect()
    third = buffers.take(1 << 20)
    assert address(third) == where  # free again: reused
    big = buffers.take(3 << 20)  # bigger than any kept: a new one of its size
    assert len(big) == 3 << 20


def test_a_buffer_comes_back_even_while_the_pool_is_busy() -> None:
    # The last view may die in any thread at any allocation, even one take() makes while it
    # holds the pool's lock (a collection freeing a cycle): giving back must never wait.
    buffers = AlignedBuffers(keep=2, size=1 << 20)
    view = buffers.take(100)
    where = address(view)
    done = threading.Event()

    def drop_while_locked() -> None:
        nonlocal view
        with buffers._lock:
            del view
        done.set()

    thread = threading.Thread(target=drop_while_locked, daemon=True)
    thread.start()
    assert done.wait(5), "giving a buffer back waited for the pool's lock"
    assert address(buffers.take(100)) == where


def test_buffers_bigger_than_the_pools_are_not_kept() -> None:
    buffers = AlignedBuffers(keep=2, size=1 << 20)
    big = buffers.take(3 << 20)
    assert len(big) == 3 << 20
    del big
    gc.collect()
    assert buffers._returned.empty() and buffers._free == []
