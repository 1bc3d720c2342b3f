"""What an image transfer sends: runs of non-zero sectors, zero gaps under 64 KiB riding along."""

from __future__ import annotations

from snapferry.client.blobs import GAP, merge_close, nonzero_runs

SECTOR = 512


def test_all_zero_blocks_send_nothing() -> None:
    assert nonzero_runs(bytes(4 * 1024 * 1024), 0) == []


def test_runs_are_sector_exact_and_offset_by_base() -> None:
    block = bytearray(8 * SECTOR)
    block[SECTOR + 7] = 1
    assert nonzero_runs(bytes(block), 1 << 20) == [((1 << 20) + SECTOR, SECTOR)]


def test_a_fragmented_block_goes_in_one_run_but_far_apart_data_in_two() -> None:
    block = bytearray(4 * 1024 * 1024)
    for sector in range(0, 2048, 2):  # every other sector of the first MiB
        block[sector * SECTOR] = 1
    block[3 * 1024 * 1024] = 7  # 2 MiB further on
    assert nonzero_runs(bytes(block), 0) == [(0, 2047 * SECTOR), (3 * 1024 * 1024, SECTOR)]


def test_extents_closer_than_the_gap_merge() -> None:
    extents = [(0, 4096), (4096 + GAP - 1, 4096), (2 * GAP + 16384, 4096)]
    assert merge_close(extents, GAP) == [(0, GAP + 8191), (2 * GAP + 16384, 4096)]
