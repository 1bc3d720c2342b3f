"""``SasBlob``: a disk's or snapshot's data through its SAS URL (the page-blob dialect), and
``import_file``/``export_file``, which move whole images with several connections at once.

A SAS URL is a secret: nothing here prints or logs it, and errors name the operation, never the
URL. Transfers hold at most ``workers`` pieces of ``PIECE`` bytes in memory, whatever the image's
size, and skip what is certainly zero: holes of a sparse file and all-zero sectors on import,
pages the page list leaves out on export.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote
from xml.etree import ElementTree

import numpy as np
import requests

from snapferry.client.errors import BadRequest, ClientError, Unreachable, for_status

PIECE = 4 * 1024 * 1024
"""Bytes per Put Page (the most one may carry) and per ranged read."""
SECTOR = 512
GAP = 64 * 1024
"""Zero runs shorter than this between pieces of data are sent (or fetched) with them: a
request per fragment of a fragmented image would cost far more than the zeros."""
WORKERS = 4
BLOB_VERSION = "2021-08-06"
"""The ``x-ms-version`` sent (page ranges with NextMarker and previous-snapshot diffs)."""
TIMEOUT = 120.0

Ranges = list[tuple[int, int]]
"""``(offset, length)`` byte extents."""
Progress = Callable[[int], None]
"""Called with the number of bytes of the image just handled (sent, skipped or written)."""


@dataclass(frozen=True)
class PageDiff:
    """What a page list says: extents holding data (in a diff: changed) and, in a diff,
    extents cleared since the older snapshot."""

    pages: Ranges
    clears: Ranges

    @property
    def page_bytes(self) -> int:
        return sum(n for _, n in self.pages)

    @property
    def clear_bytes(self) -> int:
        return sum(n for _, n in self.clears)


class SasBlob:
    """One SAS URL. Thread-safe: each thread gets its own HTTP session."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["x-ms-version"] = BLOB_VERSION
        return session

    def _call(
        self,
        method: str,
        what: str,
        *,
        query: str = "",
        headers: dict[str, str] | None = None,
        data: bytes | memoryview | None = None,
        stream: bool = False,
    ) -> requests.Response:
        url = self.url + (("&" if "?" in self.url else "?") + query if query else "")
        try:
            resp = self._session().request(
                method, url, headers=headers, data=data, stream=stream, timeout=TIMEOUT
            )
        except requests.RequestException as exc:
            raise Unreachable(f"{what}: no answer from the region ({type(exc).__name__})") from None
        if resp.status_code >= 400:
            code = resp.headers.get("x-ms-error-code") or "RequestFailed"
            message = _error_message(resp) or resp.reason
            raise for_status(resp.status_code)(
                f"{what}: {message}", code=code, status=resp.status_code
            )
        return resp

    def size(self) -> int:
        """The blob's size in bytes (Get Blob Properties)."""
        resp = self._call("HEAD", "reading the size")
        return int(resp.headers["Content-Length"])

    def page_ranges(
        self, *, previous_url: str | None = None, previous_id: str | None = None
    ) -> PageDiff:
        """The full page list, or the diff against an older snapshot given by its SAS URL or
        its ARM uniqueId."""
        headers = {"x-ms-previous-snapshot-url": previous_url} if previous_url else {}
        query = "comp=pagelist"
        if previous_id:
            query += "&prevsnapshot=" + quote(previous_id, safe="")
        resp = self._call("GET", "listing pages", query=query, headers=headers)
        try:
            root = ElementTree.fromstring(resp.content)
        except ElementTree.ParseError:
            raise ClientError("listing pages: the region sent an unreadable page list") from None
        return PageDiff(_extents(root, "PageRange"), _extents(root, "ClearRange"))

    def read(self, offset: int, length: int) -> bytes:
        """length bytes at offset (one ranged GET)."""
        end = offset + length - 1
        resp = self._call("GET", "reading", headers={"x-ms-range": f"bytes={offset}-{end}"})
        if len(resp.content) != length:
            raise ClientError(f"reading: got {len(resp.content)} bytes at {offset}, not {length}")
        return resp.content

    def write(self, offset: int, data: bytes | memoryview) -> None:
        """Put Page (update): at most PIECE bytes, offset and length multiples of 512."""
        headers = {
            "x-ms-range": f"bytes={offset}-{offset + len(data) - 1}",
            "x-ms-page-write": "update",
        }
        self._call("PUT", "writing pages", query="comp=page", headers=headers, data=data)

    def clear(self, offset: int, length: int) -> None:
        """Put Page (clear): the range reads as zeros."""
        headers = {
            "x-ms-range": f"bytes={offset}-{offset + length - 1}",
            "x-ms-page-write": "clear",
            "Content-Length": "0",
        }
        self._call("PUT", "clearing pages", query="comp=page", headers=headers)

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()


def _error_message(resp: requests.Response) -> str:
    with suppress(ElementTree.ParseError):
        node = ElementTree.fromstring(resp.content).find("Message") if resp.content else None
        if node is not None and node.text:
            return node.text
    return ""


def _extents(root: ElementTree.Element, tag: str) -> Ranges:
    out = []
    for node in root.iter(tag):
        start, end = int(node.findtext("Start", "0")), int(node.findtext("End", "-1"))
        out.append((start, end - start + 1))
    return out


# --- whole images --------------------------------------------------------------------------------
def data_extents(fd: int, size: int) -> Ranges:
    """The extents of a file that may hold data: its holes are left out where the file system
    tells them (SEEK_DATA/SEEK_HOLE), else the whole file."""
    out: Ranges = []
    at = 0
    while at < size:
        try:
            start = os.lseek(fd, at, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after at
                break
            return [(0, size)]  # the file system cannot tell: all of it may hold data
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        out.append((start, end - start))
        at = end
    return out


def is_zero(block: bytes | memoryview) -> bool:
    """Whether block (a multiple of 8 bytes long) holds only zeros, without a Python loop."""
    return not np.frombuffer(block, dtype=np.uint64).any()


def nonzero_runs(block: bytes | memoryview, base: int) -> Ranges:
    """The runs of non-zero 512-byte sectors of block (whose length is a multiple of 512),
    as ``(offset, length)`` with offsets relative to ``base``."""
    sectors = np.frombuffer(block, dtype=np.uint64).reshape(-1, SECTOR // 8).any(axis=1)
    if not sectors.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], sectors.view(np.int8), [0]))))
    starts, ends = edges[0::2], edges[1::2]
    # zero gaps shorter than GAP ride along: one request costs more than sending them
    split = starts[1:] - ends[:-1] >= GAP // SECTOR
    starts = starts[np.concatenate(([True], split))]
    ends = ends[np.concatenate((split, [True]))]
    return [
        (base + int(s) * SECTOR, int(e - s) * SECTOR) for s, e in zip(starts, ends, strict=True)
    ]


def merge_close(extents: Ranges, gap: int) -> Ranges:
    """Sorted extents with those less than ``gap`` bytes apart merged into one."""
    out: Ranges = []
    for offset, length in extents:
        if out and offset - (out[-1][0] + out[-1][1]) < gap:
            out[-1] = (out[-1][0], offset + length - out[-1][0])
        else:
            out.append((offset, length))
    return out


def _pieces(extents: Ranges, limit: int) -> Iterator[tuple[int, int]]:
    """extents cut at PIECE-aligned boundaries and clipped to limit."""
    for offset, length in extents:
        at, end = offset, min(offset + length, limit)
        while at < end:
            stop = min((at // PIECE + 1) * PIECE, end)
            yield at, stop - at
            at = stop


def _run_bounded(
    tasks: Iterator[tuple[int, int]], work: Callable[[int, int], None], workers: int
) -> None:
    """work(offset, length) for every task, at most ``workers`` at a time; the first error
    stops the rest and is raised."""
    slots = threading.Semaphore(workers * 2)
    failed: list[BaseException] = []
    with ThreadPoolExecutor(workers, thread_name_prefix="snapferry-transfer") as pool:

        def done(fut: Future[None]) -> None:
            slots.release()
            exc = fut.exception()
            if exc is not None:
                failed.append(exc)

        for offset, length in tasks:
            slots.acquire()
            if failed:
                break
            pool.submit(work, offset, length).add_done_callback(done)
    if failed:
        raise failed[0]


def upload_file(
    blob: SasBlob, path: Path, *, progress: Progress = lambda n: None, workers: int = WORKERS
) -> int:
    """Write the file's non-zero sectors to the blob (which reads as zeros elsewhere, as a new
    upload disk does); returns the bytes sent. The blob may be larger than the file."""
    sent = 0
    lock = threading.Lock()
    with path.open("rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        extents = data_extents(fd, size)
        progress(size - sum(n for _, n in extents))  # holes: nothing to send

        def work(offset: int, length: int) -> None:
            nonlocal sent
            block = os.pread(fd, length, offset)
            if len(block) != length:
                raise BadRequest(f"{path} changed while it was being read")
            padded = block + bytes(-length % SECTOR)
            view = memoryview(padded)
            for at, n in nonzero_runs(view, offset):
                blob.write(at, view[at - offset : at - offset + n])
                with lock:
                    sent += n
            progress(length)

        _run_bounded(_pieces(extents, size), work, workers)
    return sent


def download_file(
    blob: SasBlob,
    path: Path,
    size: int,
    extents: Ranges,
    *,
    progress: Progress = lambda n: None,
    workers: int = WORKERS,
) -> int:
    """Write the blob into a new sparse file of ``size`` bytes at path, fetching only extents
    (the page list); returns the bytes fetched. The file is fsynced before this returns."""
    fetched = 0
    lock = threading.Lock()
    progress(size - sum(n for _, n in extents))
    with path.open("wb") as f:
        f.truncate(size)
        fd = f.fileno()

        def work(offset: int, length: int) -> None:
            nonlocal fetched
            data = blob.read(offset, length)
            if not is_zero(data):
                os.pwrite(fd, data, offset)
            with lock:
                fetched += length
            progress(length)

        _run_bounded(_pieces(merge_close(extents, GAP), size), work, workers)
        os.fsync(fd)
    return fetched
