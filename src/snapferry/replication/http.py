"""``HttpPeerClient``: the peer API of other regions over HTTP (aiohttp), authenticated by the
cloud's peer key. Routes (served by ``snapferry.api.peer``)::

    POST /snapferry/peer/v1/resolve                 {"resourceId"}        → SourceInfo | 404
    POST /snapferry/peer/v1/grant                   {"uniqueId"}          → {"sas", "expiresAt"}
    POST /snapferry/peer/v1/snapshots/{id}/plan?SAS {"candidates","full"} → encoded CopyPlan,
                                                     x-snapferry-anchor header
    POST /snapferry/peer/v1/snapshots/{id}/pages?SAS encoded ChunkDelta   → page frame payload,
                                                     x-snapferry-content-id/-length/-encoding
    POST /snapferry/peer/v1/snapshots/{id}/frames?SAS ids, 32 bytes each  → u32 count, u64
                                                     lengths, the stored frames

A 404 whose code is ``CopySourceNotFound`` means the source is gone; every other failure is
``PeerUnavailable``. Use from one event loop (the copy worker's).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any

import aiohttp

from snapferry.engine.delta import ChunkDelta, CopyPlan
from snapferry.errors import IntegrityError, PeerUnavailable, SourceNotFound
from snapferry.replication.peers import Grant, PageFrame, SourceInfo

PEER_KEY_HEADER = "x-snapferry-peer-key"
PEER_NAME_HEADER = "x-snapferry-peer"
ANCHOR_HEADER = "x-snapferry-anchor"
CONTENT_ID_HEADER = "x-snapferry-content-id"
LENGTH_HEADER = "x-snapferry-length"
ENCODING_HEADER = "x-snapferry-encoding"
PREFIX = "/snapferry/peer/v1"
READ_BUFSIZE = 4 * 1024 * 1024
"""aiohttp's per-response read buffer (default 64 KiB): multi-MiB bodies need a bigger one."""


class HttpPeerClient:
    """Peers by name → base URL. ``me`` names the calling region in requests."""

    def __init__(self, urls: dict[str, str], key: str, *, me: str, timeout: float = 120.0) -> None:
        self.urls = urls  # filled in by the host as regions bind (shared, not copied)
        self.key = key
        self.me = me
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def regions(self) -> list[str]:
        return list(self.urls)

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=5),
                connector=aiohttp.TCPConnector(limit=64),
                read_bufsize=READ_BUFSIZE,
                headers={PEER_KEY_HEADER: self.key, PEER_NAME_HEADER: self.me},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(
        self, region: str, path: str, body: bytes, content_type: str
    ) -> tuple[int, dict[str, str], bytes]:
        base = self.urls.get(region)
        if base is None:
            raise PeerUnavailable(f"region {region!r} is not one of this region's peers")
        try:
            async with self._open().post(
                base.rstrip("/") + path, data=body, headers={"content-type": content_type}
            ) as response:
                data = await response.read()
                return response.status, dict(response.headers), data
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise PeerUnavailable(
                f"region {region} could not be reached: {type(exc).__name__}", region=region
            ) from None

    async def _json(self, region: str, path: str, doc: dict[str, Any]) -> Any:
        status, _, data = await self._post(
            region, path, json.dumps(doc).encode(), "application/json"
        )
        _raise_for(region, status, data)
        try:
            return json.loads(data)
        except ValueError:
            raise PeerUnavailable(f"region {region} answered with malformed JSON") from None

    async def resolve(self, region: str, resource_id: str) -> SourceInfo | None:
        status, _, data = await self._post(
            region,
            f"{PREFIX}/resolve",
            json.dumps({"resourceId": resource_id}).encode(),
            "application/json",
        )
        if status == 404 and _code(data) == "ResourceNotFound":
            return None
        _raise_for(region, status, data)
        try:
            return SourceInfo.from_dict(json.loads(data))
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
        status, headers, data = await self._post(region, path, body, "application/json")
        _raise_for(region, status, data)
        try:
            plan = CopyPlan.decode(data)
        except IntegrityError:
            raise PeerUnavailable(f"region {region} sent an unreadable plan") from None
        anchor = headers.get(ANCHOR_HEADER) or None
        return anchor, plan

    async def frames(
        self, region: str, engine_id: str, sas: str, oids: list[bytes]
    ) -> Sequence[bytes | memoryview]:
        path = f"{PREFIX}/snapshots/{engine_id}/frames?{sas}"
        status, _, data = await self._post(region, path, b"".join(oids), "application/octet-stream")
        _raise_for(region, status, data)
        try:
            return split_frames(data, len(oids))
        except ValueError:
            raise PeerUnavailable(f"region {region} sent frames unreadably") from None

    async def pages(self, region: str, engine_id: str, sas: str, piece: ChunkDelta) -> PageFrame:
        path = f"{PREFIX}/snapshots/{engine_id}/pages?{sas}"
        status, headers, data = await self._post(
            region, path, piece.encode(), "application/octet-stream"
        )
        _raise_for(region, status, data)
        try:
            return PageFrame(
                content_id=bytes.fromhex(headers[CONTENT_ID_HEADER]),
                length=int(headers[LENGTH_HEADER]),
                compressed=headers.get(ENCODING_HEADER) == "zstd",
                payload=data,
            )
        except (KeyError, ValueError):
            raise PeerUnavailable(f"region {region} sent pages without their id") from None


def _code(data: bytes) -> str | None:
    try:
        return str(json.loads(data)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def _raise_for(region: str, status: int, data: bytes) -> None:
    if status == 200:
        return
    code = _code(data)
    if status == 404 and code in ("CopySourceNotFound", "ResourceNotFound"):
        raise SourceNotFound(f"the source of the copy no longer exists in region {region}")
    raise PeerUnavailable(
        f"region {region} answered {status}" + (f" ({code})" if code else ""), region=region
    )


def frames_head(frames: list[bytes]) -> bytes:
    """What a frames answer starts with: a count and each frame's length (the frames follow)."""
    head: bytes = struct.pack(f"<I{len(frames)}Q", len(frames), *(len(f) for f in frames))
    return head


def split_frames(body: bytes, expected: int) -> list[memoryview]:
    """The frames of a frames answer (views into body: no copies); ValueError unless it holds
    exactly ``expected``."""
    (count,) = struct.unpack_from("<I", body)
    if count != expected:
        raise ValueError("wrong count")
    lengths = struct.unpack_from(f"<{count}Q", body, 4)
    pos = 4 + 8 * count
    view = memoryview(body)
    out = []
    for length in lengths:
        out.append(view[pos : pos + length])
        pos += length
    if pos != len(body) or any(len(f) != n for f, n in zip(out, lengths, strict=True)):
        raise ValueError("torn frames")
    return out
