"""``HttpPeerClient``: the peer API of other regions over HTTP, authenticated by the
cloud's peer key. Routes (served by ``snapferry.api.peer``)::

    POST /snapferry/peer/v1/health                  {}                    → {"region"}
    POST /snapferry/peer/v1/resolve                 {"resourceId"}        → SourceInfo | 404
    POST /snapferry/peer/v1/grant                   {"uniqueId"}          → {"sas", "expiresAt"}
    POST /snapferry/peer/v1/snapshots/{id}/plan?SAS {"candidates","full"} → encoded CopyPlan,
                                                     x-snapferry-anchor header
    POST /snapferry/peer/v1/snapshots/{id}/pages?SAS encoded ChunkDelta   → page frame payload,
                                                     x-snapferry-content-id/-length/-encoding
    POST /snapferry/peer/v1/snapshots/{id}/frames?SAS ids, 32 bytes each  → u32 count, u64
                                                     lengths, the stored frames

A 404 whose code is ``CopySourceNotFound`` means the source is gone; every other failure is
``PeerUnavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.client
import json
import mmap
import socket
import struct
import threading
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from snapferry.buffers import AlignedBuffers
from snapferry.engine.delta import ChunkDelta, CopyPlan
from snapferry.errors import IntegrityError, PeerUnavailable, SourceNotFound
from snapferry.metrics import PeerMetrics, new_registry
from snapferry.replication.peers import Grant, PageFrame, SourceInfo

PEER_KEY_HEADER = "x-snapferry-peer-key"
PEER_NAME_HEADER = "x-snapferry-peer"
ANCHOR_HEADER = "x-snapferry-anchor"
CONTENT_ID_HEADER = "x-snapferry-content-id"
LENGTH_HEADER = "x-snapferry-length"
ENCODING_HEADER = "x-snapferry-encoding"
PREFIX = "/snapferry/peer/v1"
CONNECT_SECONDS = 5.0
BULK = 64 * 1024
"""Answers at least this long are received into a page-aligned buffer of their own."""
PAGE_BYTES = mmap.PAGESIZE
KEEP_IDLE = 64
"""Idle connections kept per region."""
CALL_THREADS = 32
"""Calls in flight at once, all regions together."""
HEALTH_SECONDS = 5.0
"""How long a health check waits for its answer."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes | memoryview


class HttpPeerClient:
    """Peers by name → base URL. ``me`` names the calling region in requests.

    Each call runs on a thread of the client's own pool over kept-alive HTTP/1.1 connections of
    the standard library's ``http.client``, so any event loop may use it. A long answer is
    received straight into a page-aligned buffer: the kernel copies each byte once, with the
    GIL released, and a pack can go to disk from it without another copy (an asyncio client
    copied every byte twice more on the event loop, holding the GIL). ``timeout`` bounds a
    call: connecting (at most ``CONNECT_SECONDS``), the wait for the answer and the reading of
    a long one. A kept-alive connection the region closed meanwhile is retried once, anew.
    """

    def __init__(
        self,
        urls: dict[str, str],
        key: str,
        *,
        me: str,
        timeout: float = 120.0,
        metrics: PeerMetrics | None = None,
    ) -> None:
        self.urls = urls  # filled in by the host as regions bind (shared, not copied)
        self.key = key
        self.me = me
        self.timeout = timeout
        self.metrics = metrics or PeerMetrics(new_registry())
        self._idle: dict[str, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._buffers = AlignedBuffers()
        self._executor: ThreadPoolExecutor | None = None
        self._checker: ThreadPoolExecutor | None = None
        """Health checks' own threads: calls hung on a frozen region must not hold them up."""

    @property
    def regions(self) -> list[str]:
        return list(self.urls)

    async def close(self) -> None:
        """Close idle connections and let the threads go (calls in flight finish)."""
        with self._lock:
            executors = (self._executor, self._checker)
            self._executor = self._checker = None
        for executor in executors:
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)
        for base in list(self._idle):
            self._drop_idle(base)

    async def _post(
        self,
        region: str,
        path: str,
        body: bytes,
        content_type: str,
        *,
        aligned_at: int | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> Answer:
        """POST body to the region; the answer (header names in lower case). With
        ``aligned_at``, a long body comes in a buffer of its own, laid out so that its byte
        ``aligned_at`` starts a page; ``timeout`` bounds this call (default: the client's);
        ``check``: a health check, on threads of its own."""
        base = self.urls.get(region)
        if base is None:
            raise PeerUnavailable(f"region {region!r} is not one of this region's peers")
        call = functools.partial(
            self._call, region, base, path, body, content_type, aligned_at, timeout or self.timeout
        )
        name = path.partition("?")[0].rsplit("/", 1)[-1]
        with self.metrics.timing(region, name) as answered:
            answer = await asyncio.get_running_loop().run_in_executor(self._threads(check), call)
            answered(answer.status)
        return answer

    def _threads(self, check: bool = False) -> ThreadPoolExecutor:
        with self._lock:
            if check:
                if self._checker is None:
                    self._checker = ThreadPoolExecutor(4, thread_name_prefix="peer-check")
                return self._checker
            if self._executor is None:
                self._executor = ThreadPoolExecutor(CALL_THREADS, thread_name_prefix="peer-call")
            return self._executor

    def _call(
        self,
        region: str,
        base: str,
        path: str,
        body: bytes,
        content_type: str,
        aligned_at: int | None,
        timeout: float,
    ) -> Answer:
        headers = {
            PEER_KEY_HEADER: self.key,
            PEER_NAME_HEADER: self.me,
            "content-type": content_type,
        }
        fresh = False
        while True:
            conn: http.client.HTTPConnection | None = None
            response: http.client.HTTPResponse | None = None
            watchdog: _Watchdog | None = None
            reused = False
            try:
                url = urllib.parse.urlsplit(base)
                conn, reused = self._take(base, fresh, timeout)
                assert conn.sock is not None
                watchdog = _Watchdog(conn.sock, timeout)
                conn.request("POST", url.path.rstrip("/") + path, body=body, headers=headers)
                response = conn.getresponse()
                answer = Answer(
                    response.status,
                    {name.lower(): value for name, value in response.getheaders()},
                    _receive(response, aligned_at, self._buffers),
                )
            except (OSError, ValueError, http.client.HTTPException) as exc:
                if response is not None:
                    response.close()
                if conn is not None:
                    conn.close()
                if watchdog is not None and watchdog.stop():
                    raise PeerUnavailable(
                        f"region {region} did not answer within {timeout:g} s", region=region
                    ) from None
                if reused and response is None and isinstance(exc, ConnectionError):
                    # closed by the region while it sat idle, as its other idle ones may be
                    self._drop_idle(base)
                    fresh = True
                    continue
                raise PeerUnavailable(
                    f"region {region} could not be reached: {type(exc).__name__}", region=region
                ) from None
            if watchdog.stop() or response.will_close:
                conn.close()
            else:
                self._give(base, conn)
            return answer

    def _take(
        self, base: str, fresh: bool, timeout: float
    ) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection to base (unless fresh), or a new one; and whether it was idle.
        Each wait on it is bounded by ``timeout`` (the watchdog bounds the whole call)."""
        conn: http.client.HTTPConnection | None = None
        if not fresh:
            with self._lock:
                idle = self._idle.get(base)
                if idle:
                    conn = idle.pop()
        reused = conn is not None
        if conn is None:
            url = urllib.parse.urlsplit(base)
            kind = (
                http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
            )
            conn = kind(
                url.hostname or "127.0.0.1", url.port, timeout=min(CONNECT_SECONDS, timeout)
            )
            conn.connect()  # OSError if unreachable
        assert conn.sock is not None
        conn.sock.settimeout(timeout)
        return conn, reused

    def _drop_idle(self, base: str) -> None:
        with self._lock:
            idle = self._idle.pop(base, [])
        for conn in idle:
            conn.close()

    def _give(self, base: str, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(base, [])
            if len(idle) < KEEP_IDLE:
                idle.append(conn)
                return
        conn.close()

    async def _json(self, region: str, path: str, doc: dict[str, Any]) -> Any:
        answer = await self._post(region, path, json.dumps(doc).encode(), "application/json")
        _raise_for(region, answer.status, answer.body)
        try:
            return json.loads(bytes(answer.body))
        except ValueError:
            raise PeerUnavailable(f"region {region} answered with malformed JSON") from None

    async def health(self, region: str) -> None:
        try:
            answer = await asyncio.wait_for(
                self._post(
                    region,
                    f"{PREFIX}/health",
                    b"{}",
                    "application/json",
                    timeout=HEALTH_SECONDS,
                    check=True,
                ),
                HEALTH_SECONDS + 1,  # the checks' threads may all be busy with others
            )
        except TimeoutError:
            raise PeerUnavailable(
                f"region {region} did not answer within {HEALTH_SECONDS:g} s", region=region
            ) from None
        _raise_for(region, answer.status, answer.body)

    async def resolve(self, region: str, resource_id: str) -> SourceInfo | None:
        answer = await self._post(
            region,
            f"{PREFIX}/resolve",
            json.dumps({"resourceId": resource_id}).encode(),
            "application/json",
        )
        if answer.status == 404 and _code(answer.body) == "ResourceNotFound":
            return None
        _raise_for(region, answer.status, answer.body)
        try:
            return SourceInfo.from_dict(json.loads(bytes(answer.body)))
        except (ValueError, KeyError, TypeError):
            raise PeerUnavailable(f"region {region} described the source unreadably") from None

    async def grant(self, region: str, unique_id: str) -> Grant:
        doc = await self._json(region, f"{PREFIX}/grant", {"uniqueId": unique_id})
        try:
            return Grant(str(doc["sas"]), float(doc["expiresAt"]))
        except (KeyError, TypeError, ValueError):
            raise PeerUnavailable(f"region {region} answered a grant unreadably") from None

    async def plan(
        self, region: str, engine_id: str, sas: str, candidates: list[str], full: bool
    ) -> tuple[str | None, CopyPlan]:
        body = json.dumps({"candidates": candidates, "full": full}).encode()
        path = f"{PREFIX}/snapshots/{engine_id}/plan?{sas}"
        answer = await self._post(region, path, body, "application/json")
        _raise_for(region, answer.status, answer.body)
        try:
            plan = CopyPlan.decode(bytes(answer.body))
        except IntegrityError:
            raise PeerUnavailable(f"region {region} sent an unreadable plan") from None
        anchor = answer.headers.get(ANCHOR_HEADER) or None
        return anchor, plan

    async def frames(
        self, region: str, engine_id: str, sas: str, oids: list[bytes]
    ) -> Sequence[bytes | memoryview]:
        path = f"{PREFIX}/snapshots/{engine_id}/frames?{sas}"
        answer = await self._post(
            region,
            path,
            b"".join(oids),
            "application/octet-stream",
            aligned_at=frames_head_size(len(oids)),
        )
        _raise_for(region, answer.status, answer.body)
        try:
            return split_frames(answer.body, len(oids))
        except (ValueError, struct.error):
            raise PeerUnavailable(f"region {region} sent frames unreadably") from None

    async def pages(self, region: str, engine_id: str, sas: str, piece: ChunkDelta) -> PageFrame:
        path = f"{PREFIX}/snapshots/{engine_id}/pages?{sas}"
        answer = await self._post(
            region, path, piece.encode(), "application/octet-stream", aligned_at=0
        )
        _raise_for(region, answer.status, answer.body)
        try:
            return PageFrame(
                content_id=bytes.fromhex(answer.headers[CONTENT_ID_HEADER]),
                length=int(answer.headers[LENGTH_HEADER]),
                compressed=answer.headers.get(ENCODING_HEADER) == "zstd",
                payload=answer.body,
            )
        except (KeyError, ValueError):
            raise PeerUnavailable(f"region {region} sent pages without their id") from None


def _receive(
    response: http.client.HTTPResponse, aligned_at: int | None, buffers: AlignedBuffers
) -> bytes | memoryview:
    """The whole body. With aligned_at, one of ``BULK`` bytes or more is read into one of
    buffers, placed so that its byte ``aligned_at`` starts a page. http.client's IncompleteRead
    if it is cut short."""
    length = response.length
    if aligned_at is None or length is None or length < BULK or aligned_at > length:
        return response.read()
    pad = -aligned_at % PAGE_BYTES
    view = buffers.take(pad + length)[pad:]
    got = 0
    while got < length:
        n = response.readinto(view[got:])
        if not n:
            raise http.client.IncompleteRead(b"", length - got)
        got += n
    return view


class _Watchdog:
    """Shuts a call's socket down if the call outlives its time, whatever it is waiting for
    (a socket timeout bounds only each wait: a peer trickling bytes would never meet it)."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._fired = self._stopped = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._fired = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> bool:
        """Stop watching; whether the time ran out (the socket is shut down then)."""
        self._timer.cancel()
        with self._lock:
            self._stopped = True
            return self._fired


def _code(data: bytes | memoryview) -> str | None:
    try:
        return str(json.loads(bytes(data))["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def _raise_for(region: str, status: int, data: bytes | memoryview) -> None:
    if status == 200:
        return
    code = _code(data)
    if status == 404 and code in ("CopySourceNotFound", "ResourceNotFound"):
        raise SourceNotFound(f"the source of the copy no longer exists in region {region}")
    raise PeerUnavailable(
        f"region {region} answered {status}" + (f" ({code})" if code else ""), region=region
    )


def frames_head_size(count: int) -> int:
    """Bytes of a frames answer's head for count frames."""
    return 4 + 8 * count


def frames_head(frames: list[bytes]) -> bytes:
    """What a frames answer starts with: a count and each frame's length (the frames follow)."""
    head: bytes = struct.pack(f"<I{len(frames)}Q", len(frames), *(len(f) for f in frames))
    return head


def split_frames(body: bytes | memoryview, expected: int) -> list[memoryview]:
    """The frames of a frames answer (views into body: no copies); ValueError unless it holds
    exactly ``expected``."""
    (count,) = struct.unpack_from("<I", body)
    if count != expected:
        raise ValueError("wrong count")
    lengths = struct.unpack_from(f"<{count}Q", body, 4)
    pos = frames_head_size(count)
    view = memoryview(body)
    out = []
    for length in lengths:
        out.append(view[pos : pos + length])
        pos += length
    if pos != len(body) or any(len(f) != n for f, n in zip(out, lengths, strict=True)):
        raise ValueError("torn frames")
    return out
