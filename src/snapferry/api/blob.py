"""The page-blob wire dialect of one region's SAS URLs, as azure-storage-blob 12.x speaks it.

A raw ASGI app (no framework between the socket and the bytes) over ``control.DataPlane``:

* ``HEAD`` — Get Blob Properties (``x-ms-blob-type: PageBlob``, size, ETag, times).
* ``GET`` — Get Blob, whole (200) or ranged by ``x-ms-range`` (wins) or ``Range`` (206 with
  ``Content-Range``), streamed a chunk at a time, the next chunk read while one is sent.
* ``GET ?comp=pagelist`` — Get Page Ranges: the full list in one response unless ``maxresults``
  is sent; a diff against ``prevsnapshot`` (the older snapshot's ``uniqueId``) or
  ``x-ms-previous-snapshot-url`` (its own SAS URL) lists ``PageRange`` and ``ClearRange``.
* ``PUT ?comp=page`` — Put Page, ``x-ms-page-write: update`` (≤ 4 MiB, 512-aligned) or ``clear``.

Everything else answers 501 ``APINotImplemented`` so clients don't sit through retries. Errors
carry ``x-ms-error-code`` and an XML ``<Error>``. Every request is checked completely — SAS,
headers, ranges, body length — before anything is read or written. Nothing here logs a URL's
query, so SAS signatures never reach a log.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import functools
import hashlib
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from snapferry.api.budget import ReadBudget
from snapferry.api.commits import GroupCommit
from snapferry.api.common import Receive, Scope, Send
from snapferry.api.observe import REQUEST_ID, ROUTE_KEY
from snapferry.buffers import AlignedBuffers
from snapferry.control import blob_errors as err
from snapferry.control.access import BLOB_NAME, SasRefused
from snapferry.control.blob_errors import BlobError
from snapferry.control.dataplane import (
    MAX_PAGE_WRITE,
    Blob,
    DataPlane,
    PageList,
    PageWrite,
    Piece,
    Properties,
)
from snapferry.errors import (
    InvalidInput,
    NotFound,
    NotReady,
    SnapferryError,
    StorageFault,
    StorageIOError,
)
from snapferry.faults import named
from snapferry.metrics import DataPlaneMetrics, new_registry

log = logging.getLogger("snapferry.blob")

DEFAULT_VERSION = "2026-10-06"
MAX_RESULTS = 10_000
READ_WORKERS = 8
WRITE_WORKERS = 4
T = TypeVar("T")


class Request:
    """One data-plane request: method, path segments, decoded query and lower-case headers."""

    def __init__(self, scope: Scope) -> None:
        self.method: str = scope["method"]
        self.segments = [s for s in scope["path"].split("/") if s]
        raw = scope.get("query_string", b"").decode("latin-1")
        self.query = dict(parse_qsl(raw, keep_blank_values=True))
        self.headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
        }
        self.id = REQUEST_ID.get() or str(uuid.uuid4())

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def base_headers(self) -> list[tuple[bytes, bytes]]:
        out = [
            (b"x-ms-request-id", self.id.encode()),
            (b"x-ms-version", self.headers.get("x-ms-version", DEFAULT_VERSION).encode()),
        ]
        client_id = self.headers.get("x-ms-client-request-id")
        if client_id is not None:
            out.append((b"x-ms-client-request-id", client_id[:1024].encode("latin-1")))
        return out


def parse_range(req: Request, *, required: bool = False) -> tuple[int, int | None] | None:
    """``(start, end_inclusive_or_None)`` from ``x-ms-range`` (wins) or ``Range``."""
    name = "x-ms-range" if "x-ms-range" in req.headers else "range"
    value = req.headers.get(name)
    if value is None:
        if required:
            raise err.MissingRequiredHeader("the request needs x-ms-range: bytes=START-END")
        return None
    unit, _, spec = value.strip().partition("=")
    start_s, dash, end_s = spec.strip().partition("-")
    try:
        start = _number(start_s)
        end = _number(end_s) if end_s.strip() else None
        if unit.strip().lower() != "bytes" or not dash or start is None:
            raise ValueError
        if end_s.strip() and (end is None or end < start):
            raise ValueError
    except ValueError:
        raise err.InvalidHeaderValue(
            f"{name} must be bytes=START-END or bytes=START- with START <= END"
        ) from None
    return start, end


def _http_date(ts: float) -> bytes:
    return _whole_second_date(int(ts))


@functools.lru_cache(maxsize=1024)
def _whole_second_date(ts: int) -> bytes:
    return email.utils.formatdate(ts, usegmt=True).encode()


def _parse_date(value: str) -> float | None:
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None  # an unparseable date is ignored, as HTTP asks


def check_conditions(req: Request, props: Properties, *, reading: bool) -> bool:
    """Apply If-Match, If-None-Match, If-(Un)Modified-Since and the lease and sequence-number
    conditions. False: answer 304 Not Modified (reads only); failures raise 412."""
    if req.header("x-ms-lease-id") is not None:
        raise err.LeaseNotPresent("there is no lease on this blob")
    match = req.header("if-match")
    if match is not None and match.strip() != "*" and props.etag not in _tags(match):
        raise err.ConditionNotMet("the blob's ETag does not match If-Match")
    modified = int(props.last_modified)
    since = _parse_date(req.header("if-unmodified-since") or "")
    if since is not None and modified > since:
        raise err.ConditionNotMet("the blob was modified after If-Unmodified-Since")
    none_match = req.header("if-none-match")
    if none_match is not None and (none_match.strip() == "*" or props.etag in _tags(none_match)):
        if reading:
            return False
        raise err.ConditionNotMet("the blob's ETag matches If-None-Match")
    since = _parse_date(req.header("if-modified-since") or "")
    if since is not None and modified <= since:
        if reading:
            return False
        raise err.ConditionNotMet("the blob was not modified after If-Modified-Since")
    conditions: tuple[tuple[str, Callable[[int], bool]], ...] = (
        ("x-ms-if-sequence-number-le", lambda n: n >= 0),
        ("x-ms-if-sequence-number-lt", lambda n: n > 0),
        ("x-ms-if-sequence-number-eq", lambda n: n == 0),
    )
    for name, holds in conditions:
        value = req.header(name)
        if value is None:
            continue
        number = _number(value)
        if number is None:
            raise err.InvalidHeaderValue(f"{name} must be a non-negative integer")
        if not holds(number):
            raise err.SequenceNumberConditionNotMet(f"{name}: the sequence number is 0")
    return True


def _tags(value: str) -> list[str]:
    return [t.strip() for t in value.split(",")]


def property_headers(props: Properties) -> list[tuple[bytes, bytes]]:
    return [
        (b"etag", props.etag.encode()),
        (b"last-modified", _http_date(props.last_modified)),
        (b"x-ms-creation-time", _http_date(props.created)),
        (b"x-ms-blob-type", b"PageBlob"),
        (b"x-ms-blob-sequence-number", b"0"),
        (b"x-ms-lease-state", b"available"),
        (b"x-ms-lease-status", b"unlocked"),
        (b"x-ms-server-encrypted", b"true"),
        (b"accept-ranges", b"bytes"),
    ]


def page_list_xml(listing: PageList, marker: int, limit: int | None) -> bytes:
    """The ``<PageList>`` of ranges starting at or after ``marker``, at most ``limit`` of them,
    with a ``NextMarker`` for the rest when the limit cut it short."""
    items = [(s, e, "PageRange") for s, e in listing.pages if s >= marker]
    items += [(s, e, "ClearRange") for s, e in listing.clears if s >= marker]
    items.sort()
    after = None
    if limit is not None and len(items) > limit:
        after = items[limit][0]
        items = items[:limit]
    body = "".join(f"<{t}><Start>{s}</Start><End>{e}</End></{t}>" for s, e, t in items)
    if after is not None:
        body += f"<NextMarker>{_encode_marker(after)}</NextMarker>"
    xml = f'<?xml version="1.0" encoding="utf-8"?><PageList>{body}</PageList>'
    return xml.encode()


def _encode_marker(offset: int) -> str:
    return base64.urlsafe_b64encode(f"pages:{offset}".encode()).decode()


def _decode_marker(marker: str) -> int:
    try:
        kind, _, offset = base64.urlsafe_b64decode(marker.encode()).decode().partition(":")
        if kind != "pages" or not offset.isdigit():
            raise ValueError
        return int(offset)
    except ValueError:
        raise err.InvalidQueryParameterValue("marker is not one this server issued") from None


def error_parts(exc: SnapferryError) -> tuple[int, str, bytes]:
    """Status, error code and XML body of an error (an engine error gets its storage form)."""
    if isinstance(exc, StorageFault):
        status = 500 if isinstance(exc, StorageIOError) else 503
    else:
        if not isinstance(exc, BlobError | SasRefused):
            exc = _storage_form(exc)
        status = getattr(exc, "status", 500)
    message = _xml_text(exc.message)
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{_xml_text(exc.code)}</Code>'
        f"<Message>{message}</Message></Error>"
    )
    return status, exc.code, body.encode()


def _storage_form(exc: SnapferryError) -> SnapferryError:
    if isinstance(exc, NotFound):
        return err.BlobNotFound(exc.message)
    if isinstance(exc, NotReady):
        return err.OperationNotAllowed(exc.message)
    if isinstance(exc, InvalidInput):
        return err.InvalidHeaderValue(exc.message)
    if exc.code == "ZoneUnavailable":
        return err.ZoneUnavailable(exc.message)
    if exc.retryable:
        return err.ServerBusy(exc.message)
    log.error("data plane: %s (%s)", exc.code, exc.message)
    return err.BlobError("the server failed to answer")


@dataclass
class Reply:
    """An answer decided in a worker thread: status, headers, the body (or its first piece),
    and for a streamed body the rest of its pieces and how many bytes they still hold."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: Piece = b""
    rest: Iterator[Piece] | None = None
    remaining: int = 0


class BlobApp:
    """The data plane's ASGI app for one region (see module docstring)."""

    def __init__(
        self,
        plane: DataPlane,
        *,
        read_buffer_bytes: int = 512 * 1024**2,
        metrics: DataPlaneMetrics | None = None,
    ) -> None:
        metrics = metrics or DataPlaneMetrics(new_registry())
        self.plane = plane
        self.budget = ReadBudget(read_buffer_bytes)
        self.bodies = AlignedBuffers(keep=2 * WRITE_WORKERS, size=MAX_PAGE_WRITE)
        self.pool = ThreadPoolExecutor(READ_WORKERS, thread_name_prefix=f"blob-{plane.region}")
        self.writes = ThreadPoolExecutor(WRITE_WORKERS, thread_name_prefix=f"put-{plane.region}")
        # one disk's writes queue here, on the event loop, not in the write pool: a slow write
        # never holds up another disk's
        self.commits = GroupCommit(
            lambda engine_id, writes: self._write(self.plane.put_pages, engine_id, writes),
            metrics.page_write_groups.observe,
        )

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.writes.shutdown(wait=True)

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a write on the write pool: slow writes never hold up reads."""
        return await asyncio.get_running_loop().run_in_executor(self.writes, fn, *args)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        req = Request(scope)
        scope[ROUTE_KEY] = f"blob:{_operation(req)}"
        try:
            await self._dispatch(req, receive, send)
        except Exception as exc:
            typed = named(exc)
            if typed is None:
                log.exception("data plane %s %s failed", req.method, "/".join(req.segments[:2]))
                typed = err.BlobError("the server failed to answer")
            await self._error(req, send, typed)

    async def _error(self, req: Request, send: Send, exc: SnapferryError) -> None:
        status, code, body = error_parts(exc)
        if status != 500 and not isinstance(exc, StorageFault):  # logged where it was found
            log.info("answered %d %s: %s", status, code, exc.message)
        if req.method == "HEAD":
            body = b""
        headers = [
            *req.base_headers(),
            (b"x-ms-error-code", code.encode()),
            (b"content-type", b"application/xml"),
            (b"content-length", str(len(body)).encode()),
        ]
        if isinstance(exc, StorageFault):
            headers.append((b"retry-after", str(exc.retry_after).encode()))
        elif status == 503:
            headers.append((b"retry-after", b"1"))
        if status == 416 and code == "InvalidRange":
            headers.append((b"content-range", f"bytes */{exc.details.get('size', 0)}".encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _dispatch(self, req: Request, receive: Receive, send: Send) -> None:
        if req.segments and req.segments[0] != self.plane.region:
            raise SasRefused(
                f"this is region {self.plane.region}: the URL names another region's data"
            )
        if len(req.segments) != 3 or req.segments[2] != BLOB_NAME:
            raise err.BlobNotFound(f"the blob of a disk or snapshot is named {BLOB_NAME!r}")
        comp = req.query.get("comp")
        if "snapshot" in req.query or "versionid" in req.query:
            raise err.NotImplementedHere("blob snapshots and versions are not supported")
        if req.method in ("GET", "HEAD") and comp is None:
            await self._get(req, receive, send)
        elif req.method == "GET" and comp == "pagelist":
            await self._page_list(req, send)
        elif req.method == "PUT" and comp == "page":
            await self._put_page(req, receive, send)
        elif req.method == "PUT" and comp is None and "x-ms-blob-type" in req.headers:
            raise err.NotImplementedHere(
                "the blob of a managed disk is made through ARM (createOption Upload), not here"
            )
        else:
            what = f"{req.method}" + (f" comp={comp[:32]}" if comp else "")
            raise err.NotImplementedHere(f"{what} is not supported on a disk or snapshot")

    def _open(self, req: Request, needed: str) -> tuple[Blob, Properties]:
        blob = self.plane.open(req.segments[1], req.query, needed)
        return blob, self.plane.properties(blob)

    # --- reads -----------------------------------------------------------------------------
    def _prepare_get(self, req: Request, wanted: tuple[int, int | None] | None) -> Reply:
        """Everything a GET or HEAD decides before its body, in one worker-thread hop: the SAS,
        conditions, range and headers, and the first piece of the body."""
        blob, props = self._open(req, "r")
        headers = req.base_headers() + property_headers(props)
        if not check_conditions(req, props, reading=True):
            return Reply(304, headers)
        status, start, end = 200, 0, props.size
        if wanted is not None and req.method != "HEAD":  # properties ignore a range
            first, last = wanted
            if first >= props.size:
                raise err.InvalidRange(
                    f"the range starts at or after the blob's end ({props.size})", size=props.size
                )
            last = props.size - 1 if last is None else min(last, props.size - 1)
            status, start, end = 206, first, last + 1
            headers.append((b"content-range", f"bytes {first}-{last}/{props.size}".encode()))
        headers.append((b"content-type", b"application/octet-stream"))
        if req.method == "HEAD":
            return Reply(200, [*headers, (b"content-length", str(props.size).encode())])
        headers.append((b"content-length", str(end - start).encode()))
        if (req.header("x-ms-range-get-content-md5") or "").lower() == "true":
            if wanted is None or end - start > MAX_PAGE_WRITE:
                raise err.InvalidHeaderValue(
                    "x-ms-range-get-content-md5 needs a range of at most 4 MiB"
                )
            data = b"".join(self.plane.read(blob, start, end))
            md5 = base64.b64encode(hashlib.md5(data).digest())
            return Reply(status, [*headers, (b"content-md5", md5)], data)
        pieces = self.plane.read(blob, start, end)
        first_piece = next(pieces, b"")  # a read error still becomes an error answer
        return Reply(status, headers, first_piece, pieces, end - start - len(first_piece))

    async def _get(self, req: Request, receive: Receive, send: Send) -> None:
        if not self.budget.try_take():  # for the first piece
            raise err.ServerBusy(
                "the region holds as much as it may for answers being sent; retry in a moment"
            )
        held = [1]  # units of the budget this answer holds
        try:
            reply = await self._run(self._prepare_get, req, parse_range(req))
            await send(
                {"type": "http.response.start", "status": reply.status, "headers": reply.headers}
            )
            if reply.rest is None or reply.remaining <= 0:
                await send({"type": "http.response.body", "body": reply.body})
                return
            await self._stream(send, receive, reply, held)
        finally:
            self.budget.give(held[0])

    async def _stream(self, send: Send, receive: Receive, reply: Reply, held: list[int]) -> None:
        """Send the body's pieces as they are read, reading the next while one is sent when the
        budget allows (else after it, holding nothing while it waits); stop early if the client
        goes away. ``held[0]``: the budget's units this answer holds, kept up to date."""
        assert reply.rest is not None
        rest = reply.rest
        gone = asyncio.ensure_future(_disconnected(receive))

        def read_next() -> asyncio.Future[Piece]:
            held[0] += 1
            return asyncio.ensure_future(self._run(next, rest, b""))

        piece, remaining = reply.body, reply.remaining
        try:
            while True:
                upcoming = read_next() if remaining > 0 and self.budget.try_take() else None
                await _send_piece(send, piece)
                piece = b""
                held[0] -= 1
                self.budget.give()
                if gone.done() or (upcoming is None and remaining <= 0):
                    break
                if upcoming is None:
                    if not await self._take_unless(gone):
                        break
                    upcoming = read_next()
                piece = await upcoming
                remaining -= len(piece)
                if not piece:
                    break
            if not gone.done():
                await send({"type": "http.response.body", "body": b""})
        except SnapferryError as exc:
            # the status is sent: all that is left is to cut the body short, which the client
            # sees as a failed read (its length falls short of Content-Length)
            log.error("data plane read failed mid-body: %s (%s)", exc.code, exc.message)
        except Exception:
            log.exception("data plane read failed mid-body")
        finally:
            gone.cancel()

    async def _take_unless(self, gone: asyncio.Future[None]) -> bool:
        """Take a unit of the budget, unless the client goes away first (False)."""
        taking = asyncio.ensure_future(self.budget.take())
        await asyncio.wait([taking, gone], return_when=asyncio.FIRST_COMPLETED)
        if taking.done():
            return True
        taking.cancel()
        return False

    async def _page_list(self, req: Request, send: Send) -> None:
        wanted = parse_range(req)
        if wanted is not None and (
            wanted[0] % 512 or (wanted[1] is not None and (wanted[1] + 1) % 512)
        ):
            raise err.InvalidPageRange(
                "a page list's range must start at a multiple of 512 and end one byte before one"
            )
        limit = _max_results(req.query.get("maxresults"))
        marker = _decode_marker(req.query["marker"]) if req.query.get("marker") else 0
        previous_url = req.header("x-ms-previous-snapshot-url")
        previous_id = req.query.get("prevsnapshot")

        def listing() -> tuple[Properties, PageList] | None:
            blob, props = self._open(req, "r")
            if not check_conditions(req, props, reading=True):
                return None
            previous = None
            if previous_url is not None:
                previous = self.plane.previous(blob, previous_url)
            elif previous_id is not None:
                previous = self.plane.previous_by_unique_id(blob, previous_id)
            lo, hi = 0, props.size
            if wanted is not None:
                lo, hi = wanted[0], props.size if wanted[1] is None else wanted[1] + 1
            return props, self.plane.page_ranges(blob, lo, min(hi, props.size), previous)

        found = await self._run(listing)
        if found is None:
            await _respond(send, 304, req.base_headers())
            return
        props, pages = found
        body = page_list_xml(pages, marker, limit)
        headers = [
            *req.base_headers(),
            (b"etag", props.etag.encode()),
            (b"last-modified", _http_date(props.last_modified)),
            (b"x-ms-blob-content-length", str(props.size).encode()),
            (b"content-type", b"application/xml"),
            (b"content-length", str(len(body)).encode()),
        ]
        await _respond(send, 200, headers, body)

    # --- writes ----------------------------------------------------------------------------
    async def _put_page(self, req: Request, receive: Receive, send: Send) -> None:
        mode = (req.header("x-ms-page-write") or "").strip().lower()
        if not mode:
            raise err.MissingRequiredHeader("Put Page needs x-ms-page-write: update or clear")
        if mode not in ("update", "clear"):
            raise err.InvalidHeaderValue("x-ms-page-write must be update or clear")
        if req.header("x-ms-content-crc64") is not None:
            raise err.NotImplementedHere("x-ms-content-crc64 is not supported; send Content-MD5")
        start, last = parse_range(req, required=True)  # type: ignore[misc]
        if last is None:
            raise err.InvalidHeaderValue("Put Page needs a closed range bytes=START-END")
        length = last - start + 1
        if start % 512 or length % 512:
            raise err.InvalidPageRange(
                f"page range bytes={start}-{last} must start at a multiple of 512 and end one "
                "byte before one"
            )
        declared = _content_length(req)
        if mode == "clear" and declared:
            raise err.InvalidHeaderValue("a clear carries no body (Content-Length: 0)")
        if mode == "update":
            if declared is None:
                raise err.MissingContentLength("Put Page (update) needs Content-Length")
            if declared > MAX_PAGE_WRITE:
                raise err.RequestBodyTooLarge(
                    f"a page write carries at most {MAX_PAGE_WRITE} bytes, not {declared}"
                )
            if declared != length:
                raise err.InvalidHeaderValue(
                    f"Content-Length {declared} differs from the range's {length} bytes"
                )
        md5 = req.header("content-md5")

        def authorize() -> None:  # refuse early, before any body arrives
            blob, props = self._open(req, "w")
            check_conditions(req, props, reading=False)
            self.plane.check_page_range(blob, start, length)

        await self._run(authorize)
        data = None
        if mode == "update":
            data = await _read_body(receive, length, self.bodies)
            if data is None:
                return  # the client went away: nothing was written
            if md5 is not None and base64.b64encode(hashlib.md5(data).digest()).decode() != md5:
                raise err.Md5Mismatch("the body does not match its Content-MD5")

        def conditions(props: Properties) -> None:
            check_conditions(req, props, reading=False)

        write = PageWrite(req.query, start, length, data, conditions)
        props = await self.commits.put(req.segments[1], write)
        headers = [
            *req.base_headers(),
            (b"etag", props.etag.encode()),
            (b"last-modified", _http_date(props.last_modified)),
            (b"x-ms-blob-sequence-number", b"0"),
            (b"x-ms-request-server-encrypted", b"true"),
            (b"content-length", b"0"),
        ]
        if md5 is not None:
            headers.append((b"content-md5", md5.encode("latin-1")))
        await _respond(send, 201, headers)


def _operation(req: Request) -> str:
    """The Blob service operation a request asks for (for metrics)."""
    comp = req.query.get("comp")
    return {
        ("GET", None): "GetBlob",
        ("HEAD", None): "GetBlobProperties",
        ("GET", "pagelist"): "GetPageRanges",
        ("PUT", "page"): "PutPage",
    }.get((req.method, comp), "other")


SEND_SLICE = 256 * 1024
"""Bytes handed to a connection at a time: its buffer never holds more than this beyond the
piece (a whole piece would be copied into it when the client reads slowly)."""


async def _send_piece(send: Send, piece: Piece) -> None:
    view = memoryview(piece)
    for at in range(0, len(view), SEND_SLICE):
        await send(
            {"type": "http.response.body", "body": view[at : at + SEND_SLICE], "more_body": True}
        )


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone away."""
    while (await receive())["type"] != "http.disconnect":
        pass


_DIGITS = re.compile(r"[0-9]{1,19}")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _number(value: str) -> int | None:
    """A non-negative decimal integer (ASCII digits only), or None."""
    value = value.strip()
    return int(value) if _DIGITS.fullmatch(value) else None


def _xml_text(text: str) -> str:
    """text escaped for XML, characters XML cannot carry replaced by U+FFFD."""
    return escape(_NOT_XML.sub("\ufffd", text))


def _max_results(value: str | None) -> int | None:
    if value is None:
        return None
    number = _number(value)
    if number is None or not 1 <= number <= MAX_RESULTS:
        raise err.InvalidQueryParameterValue(f"maxresults must be between 1 and {MAX_RESULTS}")
    return number


def _content_length(req: Request) -> int | None:
    value = req.header("content-length")
    if value is None:
        return None
    number = _number(value)
    if number is None:
        raise err.InvalidHeaderValue("Content-Length must be a non-negative integer")
    return number


async def _read_body(receive: Receive, length: int, buffers: AlignedBuffers) -> memoryview | None:
    """Exactly ``length`` body bytes, received into a page-aligned buffer of ``buffers`` (one
    copy, and the write goes to disk from it around the page cache without another), or None
    if the client went away."""
    body = buffers.take(length)
    got = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if got + len(chunk) > length:
            raise err.InvalidHeaderValue("the body is longer than its Content-Length")
        body[got : got + len(chunk)] = chunk
        got += len(chunk)
        if not message.get("more_body", False):
            break
    if got != length:
        raise err.InvalidHeaderValue(f"the body has {got} bytes, not its Content-Length {length}")
    return body


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> None:
    if not any(name == b"content-length" for name, _ in headers):
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
