"""Each wrapper store does what it says, and nothing else."""

from __future__ import annotations

import pytest

from snapferry.errors import InvalidInput, StoreError, TransientStoreError
from snapferry.store import (
    ChunkStore,
    CorruptingStore,
    CountingStore,
    DelayingStore,
    FailingStore,
    FaultSchedule,
    MemoryStore,
)


def test_schedule_without_rules_never_fires() -> None:
    schedule = FaultSchedule()
    assert not any(schedule.should_fault("get", "k") for _ in range(100))
    assert schedule.calls["get"] == 100


def test_schedule_counts_each_operation_separately() -> None:
    schedule = FaultSchedule(ops={"get", "has"}, nth={2})
    decisions = [schedule.should_fault(op, "k") for op in ["get", "has", "get", "has", "size"]]
    assert decisions == [False, False, True, True, False]
    assert schedule.fired == [("get", "k", 2), ("has", "k", 2)]
    assert schedule.calls["size"] == 0


def test_schedule_every_predicate_and_limit() -> None:
    every = FaultSchedule(every=3)
    assert [every.should_fault("get", "k") for _ in range(7)] == [
        False,
        False,
        True,
        False,
        False,
        True,
        False,
    ]
    when = FaultSchedule(when=lambda op, key: key.startswith("x/"))
    assert [when.should_fault("get", k) for k in ["a", "x/1", "x/2"]] == [False, True, True]
    limited = FaultSchedule(every=1, limit=2)
    assert [limited.should_fault("get", "k") for _ in range(4)] == [True, True, False, False]


def test_schedule_refuses_unknown_operations() -> None:
    with pytest.raises(InvalidInput):
        FaultSchedule(ops={"put"})


def test_failing_store_fails_only_the_second_put() -> None:
    inner = MemoryStore()
    store = FailingStore(inner, FaultSchedule(ops={"put_if_absent"}, nth={2}))
    assert store.put_if_absent("a", b"1") is True
    with pytest.raises(TransientStoreError, match="injected"):
        store.put_if_absent("b", b"2")
    assert inner.has("b") is False  # failed before reaching the store
    assert store.put_if_absent("c", b"3") is True
    assert store.put_if_absent("b", b"2") is True  # the retry succeeds
    assert list(store.keys()) == ["a", "b", "c"]
    assert store.get("a") == b"1"


def test_failing_store_after_delegating_loses_the_response() -> None:
    inner = MemoryStore()
    store = FailingStore(inner, FaultSchedule(nth={1}), exc=StoreError, after=True)
    with pytest.raises(StoreError) as caught:
        store.put_if_absent("k", b"v")
    assert not isinstance(caught.value, TransientStoreError)
    assert inner.get("k") == b"v"  # the write happened
    assert store.put_if_absent("k", b"v") is False  # and a retry sees it


def test_failing_store_can_fail_listing() -> None:
    inner = MemoryStore()
    inner.put_if_absent("k", b"v")
    store = FailingStore(inner, FaultSchedule(ops={"keys"}, nth={1}))
    with pytest.raises(TransientStoreError):
        store.keys()
    assert list(store.keys()) == ["k"]


def test_delaying_store_sleeps_only_for_chosen_operations() -> None:
    slept: list[float] = []
    store = DelayingStore(MemoryStore(), 0.25, ops={"get"}, sleep=slept.append)
    store.put_if_absent("k", b"v")
    assert store.has("k")
    assert slept == []
    assert store.get("k") == b"v"
    assert slept == [0.25]


def test_corrupting_store_flips_exactly_one_byte_on_scheduled_gets() -> None:
    data = bytes(range(256)) * 4
    inner = MemoryStore()
    inner.put_if_absent("k", data)
    store = CorruptingStore(inner, FaultSchedule(ops={"get"}, nth={2}))
    assert store.get("k") == data
    corrupted = store.get("k")
    assert len(corrupted) == len(data)
    assert sum(a != b for a, b in zip(corrupted, data, strict=True)) == 1
    assert store.get("k") == data
    assert inner.get("k") == data  # stored bytes never touched


def test_corrupting_store_leaves_empty_data_alone() -> None:
    inner = MemoryStore()
    inner.put_if_absent("empty", b"")
    store = CorruptingStore(inner, FaultSchedule(every=1))
    assert store.get("empty") == b""


def test_corrupting_store_can_corrupt_puts() -> None:
    inner = MemoryStore()
    store = CorruptingStore(inner, FaultSchedule(ops={"put_if_absent"}, every=1), puts=True)
    buffer = bytearray(b"abcdefgh")
    assert store.put_if_absent("k", memoryview(buffer)) is True
    stored = inner.get("k")
    assert sum(a != b for a, b in zip(stored, b"abcdefgh", strict=True)) == 1
    assert buffer == b"abcdefgh"  # the caller's buffer is left alone


def test_counting_store_counts_calls_and_bytes() -> None:
    store = CountingStore(MemoryStore())
    store.put_if_absent("a", b"12345")
    store.put_if_absent("a", memoryview(b"123"))
    store.get("a")
    store.get("a", 1, 2)
    store.has("a")
    list(store.keys())
    with pytest.raises(StoreError):
        store.get("missing")
    assert store.calls == {"put_if_absent": 2, "get": 3, "has": 1, "keys": 1}
    assert store.nbytes == {"put_if_absent": 8, "get": 7}
    store.reset()
    assert store.calls == {}
    assert store.nbytes == {}


def test_wrappers_stack_and_remain_chunk_stores() -> None:
    counting = CountingStore(MemoryStore())
    stacked = FailingStore(counting, FaultSchedule(ops={"get"}, nth={1}))
    stores: list[object] = [stacked, counting, DelayingStore(counting, 0.0)]
    assert all(isinstance(s, ChunkStore) for s in stores)
    stacked.put_if_absent("k", b"v")
    with pytest.raises(TransientStoreError):
        stacked.get("k")
    assert counting.calls["get"] == 0  # the fault fired before reaching the inner store
    assert stacked.get("k") == b"v"
    assert counting.calls["get"] == 1
