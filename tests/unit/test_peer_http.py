"""HttpPeerClient against a raw loopback server that misbehaves on purpose: answers received
page-aligned, header names in any case, idle connections the peer closed, answers cut short or
trickled, a peer that is not there."""

from __future__ import annotations

import asyncio
import mmap
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest

from snapferry.buffers import address
from snapferry.engine.delta import ChunkDelta, CopyPlan
from snapferry.errors import PeerUnavailable
from snapferry.replication.http import HttpPeerClient, frames_head

T = TypeVar("T")
Handler = Callable[[socket.socket, int], None]
"""Serves one connection (the socket, and how many came before it)."""


class RawServer:
    def __init__(self, handler: Handler) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handler = handler
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            n, self.connections = self.connections, self.connections + 1
            threading.Thread(target=self._serve, args=(conn, n), daemon=True).start()

    def _serve(self, conn: socket.socket, n: int) -> None:
        with conn:
            self.handler(conn, n)


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], RawServer]]:
    servers: list[RawServer] = []

    def start(handler: Handler) -> RawServer:
        servers.append(RawServer(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.listener.close()


def read_request(conn: socket.socket) -> bytes:
    """One request's body (the head read up to its blank line, then content-length bytes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        got = conn.recv(65536)
        if not got:
            return b""
        data += got
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += conn.recv(65536)
    return body


def answer(headers: dict[str, str], body: bytes, *, length: int | None = None) -> bytes:
    lines = ["HTTP/1.1 200 OK", f"Content-Length: {len(body) if length is None else length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def client(server: RawServer, timeout: float = 10.0) -> HttpPeerClient:
    return HttpPeerClient(
        {"east": f"http://127.0.0.1:{server.port}"}, "key", me="west", timeout=timeout
    )


def run(peer: HttpPeerClient, call: Callable[[HttpPeerClient], Awaitable[T]]) -> T:
    """call(peer) on a new event loop; the peer closed after it."""

    async def go() -> T:
        try:
            return await call(peer)
        finally:
            await peer.close()

    return asyncio.run(go())


FRAMES = [bytes([i]) * (300_000 + i) for i in range(3)]


def frames_answer(conn: socket.socket, n: int) -> None:
    while read_request(conn):
        conn.sendall(answer({}, frames_head(FRAMES) + b"".join(FRAMES)))


def test_frames_arrive_whole_and_page_aligned_on_kept_alive_connections(
    serve: Callable[[Handler], RawServer],
) -> None:
    server = serve(frames_answer)
    peer = client(server)

    async def fetch() -> list[list[bytes | memoryview]]:
        try:
            return [list(await peer.frames("east", "s", "sig", [b"x" * 32] * 3)) for _ in range(3)]
        finally:
            await peer.close()

    for got in asyncio.run(fetch()):
        assert [bytes(f) for f in got] == FRAMES
        assert address(got[0]) % mmap.PAGESIZE == 0  # stored as a pack from where it lies
    assert server.connections == 1


def test_header_names_are_read_in_any_case(serve: Callable[[Handler], RawServer]) -> None:
    plan = CopyPlan.pages_only(ChunkDelta.empty()).encode()

    def handler(conn: socket.socket, n: int) -> None:
        read_request(conn)
        conn.sendall(answer({"X-Snapferry-Anchor": "snap-1"}, plan))

    anchor, _ = run(client(serve(handler)), lambda peer: peer.plan("east", "s", "sig", [], False))
    assert anchor == "snap-1"


def test_an_idle_connection_the_peer_closed_is_tried_again_anew(
    serve: Callable[[Handler], RawServer],
) -> None:
    def once_then_close(conn: socket.socket, n: int) -> None:
        read_request(conn)
        conn.sendall(answer({}, frames_head(FRAMES) + b"".join(FRAMES)))
        # says nothing of closing, and closes: as a server does when its keep-alive expires

    server = serve(once_then_close)
    peer = client(server)

    async def twice() -> None:
        for _ in range(2):
            await peer.frames("east", "s", "sig", [b"x" * 32] * 3)
            await asyncio.sleep(0.1)
        await peer.close()

    asyncio.run(twice())
    assert server.connections == 2


def test_an_answer_cut_short_is_peer_unavailable(serve: Callable[[Handler], RawServer]) -> None:
    def cut(conn: socket.socket, n: int) -> None:
        read_request(conn)
        conn.sendall(answer({}, b"\0" * 500_000, length=1_000_000))

    with pytest.raises(PeerUnavailable, match="could not be reached"):
        run(client(serve(cut)), lambda peer: peer.frames("east", "s", "sig", [b"x" * 32]))


def test_a_trickling_peer_is_cut_off_at_the_timeout(
    serve: Callable[[Handler], RawServer],
) -> None:
    def trickle(conn: socket.socket, n: int) -> None:
        read_request(conn)
        conn.sendall(answer({}, b"", length=1_000_000))
        try:
            for _ in range(100):
                conn.sendall(b"\0" * 1000)
                time.sleep(0.1)
        except OSError:
            return

    start = time.monotonic()
    with pytest.raises(PeerUnavailable, match="did not answer within 1 s"):
        run(
            client(serve(trickle), timeout=1.0),
            lambda peer: peer.frames("east", "s", "sig", [b"x" * 32]),
        )
    assert time.monotonic() - start < 3


def test_a_peer_that_is_not_there_is_unavailable() -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    peer = HttpPeerClient({"east": f"http://127.0.0.1:{port}"}, "key", me="west")
    with pytest.raises(PeerUnavailable, match="east could not be reached"):
        run(peer, lambda p: p.grant("east", "u"))
    with pytest.raises(PeerUnavailable, match="not one of this region's peers"):
        run(peer, lambda p: p.grant("north", "u"))
