"""Disk operations: creating, growing, writing (durably, atomically) and reading disks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from snapferry.engine import bitmaps
from snapferry.engine import diff as diffs
from snapferry.engine.base import EngineBase
from snapferry.engine.checks import check_range, check_size
from snapferry.engine.journal import Journal, held_pages
from snapferry.engine.models import DiskInfo
from snapferry.engine.resolve import View
from snapferry.errors import InvalidInput
from snapferry.ids import new_id
from snapferry.meta import catalog
from snapferry.settings import PAGE, PAGES_PER_CHUNK


class DiskOps(EngineBase):
    """Disks: create, read, write, grow, and views of their current content."""

    # --- disks -------------------------------------------------------------------------------
    def create_disk(self, size_bytes: int) -> DiskInfo:
        """A new, empty (all-zero) disk. Costs only metadata, whatever its size."""
        check_size(size_bytes)
        disk_id, now = new_id(), self.clock()
        with self.db.begin() as conn:
            catalog.insert_disk(
                conn,
                id=disk_id,
                family_id=new_id(),
                size_bytes=size_bytes,
                base_id=None,
                head_gen=1,
                created_at=now,
            )
        return self.get_disk(disk_id)

    def list_disks(self) -> list[DiskInfo]:
        with self.db.connect() as conn:
            ids = [r.id for r in catalog.all_disks(conn)]
        return [self.get_disk(i) for i in ids]

    def resize_disk(self, disk_id: str, size_bytes: int) -> DiskInfo:
        """Grow a disk; the new space reads as zeros. Shrinking is refused."""
        check_size(size_bytes)
        with self.disk_lock(disk_id):
            current = self._disk_row(disk_id)[0]
            if size_bytes < current:
                raise InvalidInput(
                    f"disk {disk_id} is {current} bytes; disks only grow", size_bytes=size_bytes
                )
            with self.db.begin() as conn:
                catalog.update_disk(conn, disk_id, size_bytes=size_bytes)
        return self.get_disk(disk_id)

    def write(self, disk_id: str, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write data at offset (both multiples of 512). Durable when this returns."""
        self.write_many(disk_id, [(offset, data)])

    def write_many(
        self, disk_id: str, writes: Iterable[tuple[int, bytes | bytearray | memoryview]]
    ) -> None:
        """Several writes with one durability barrier. All are validated before any lands;
        StorageFull (nothing written) if they would eat into the space reserve."""
        size = self._disk_row(disk_id)[0]
        checked = []
        for offset, data in writes:
            view = memoryview(data).cast("B")
            check_range(offset, len(view), size, "write")
            if len(view):
                checked.append((offset, view))
        if not checked:
            return
        self.reserve.check(sum(len(view) for _, view in checked))
        with self.disk_lock(disk_id):
            head = self.head(disk_id)
            pending: dict[int, np.ndarray] = {}
            journal = Journal()
            for offset, view in checked:
                first, end = bitmaps.page_span(offset, len(view))
                buf = self._page_aligned(disk_id, pending, journal, offset, view, first, end)
                held = held_pages(head, first, end)
                head.overlay.write_runs(first, buf, ~held)
                if held.any():
                    # pages an acknowledged write already put in this generation: overwriting
                    # them in place could tear; they go through the journal
                    journal.add(first, buf, held)
                for chunk, mask in bitmaps.mark_pages(first, end).items():
                    bits = bitmaps.pack(mask)
                    old = pending[chunk] if chunk in pending else head.bits(chunk)
                    pending[chunk] = bits if old is None else old | bits
            if journal:
                head.overlay.write_journal(journal.parts)
            head.overlay.sync()
            packed = {c: m.tobytes() for c, m in pending.items()}
            with self.db.begin() as conn:
                catalog.put_head_bitmaps(conn, disk_id, head.gen, packed)
                if journal:
                    catalog.put_journal(conn, disk_id, head.gen, journal.pages().tobytes())
            if journal:
                head.overlay.replay_journal(journal.pages())
                with self.db.begin() as conn:
                    catalog.drop_journal(conn, disk_id, head.gen)
            head.mark(pending)

    def _page_aligned(
        self,
        disk_id: str,
        pending: dict[int, np.ndarray],
        journal: Journal,
        offset: int,
        data: memoryview,
        first: int,
        end: int,
    ) -> memoryview:
        """data widened to whole pages, the edges filled with the disk's current content."""
        start, stop = first * PAGE, end * PAGE
        if start == offset and stop == offset + len(data):
            return data
        buf = bytearray(stop - start)
        head = self.head(disk_id)
        for page in {first, end - 1}:
            chunk, index = divmod(page, PAGES_PER_CHUNK)
            bits = pending.get(chunk)
            journaled = journal.latest(page)
            if journaled is not None:
                content = journaled
            elif bits is not None and bitmaps.is_set(bits, index):
                content = head.overlay.gather(np.array([page], dtype=np.int64))[0]
            else:
                content = self._current_chunk(disk_id, chunk)[index]
            buf[(page - first) * PAGE : (page - first + 1) * PAGE] = content.tobytes()
        buf[offset - start : offset - start + len(data)] = data
        return memoryview(buf)

    def read(self, disk_id: str, offset: int, length: int) -> bytes:
        """Bytes of a disk (offset and length multiples of 512)."""
        return b"".join(self.iter_read(disk_id, offset, length))

    def iter_read(self, disk_id: str, offset: int, length: int) -> Iterator[memoryview]:
        """A disk's bytes, streamed a chunk at a time."""
        return self._stream(
            self._disk_view(disk_id), offset, length, lambda: self._disk_view(disk_id)
        )

    def disk_allocated(self, disk_id: str) -> list[tuple[int, int]]:
        """Byte extents of the disk that may hold data (outside them it reads as zeros): what a
        full page list reports. Metadata only; waits for writes in flight."""
        with self.disk_lock(disk_id):
            return diffs.allocated_view(self._disk_view(disk_id))

    def disk_view(self, disk_id: str) -> View:
        return self._disk_view(disk_id)
