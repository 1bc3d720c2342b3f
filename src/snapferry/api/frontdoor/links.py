"""The front door's view of its regions: where each answers, and forwarding calls to it."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from snapferry.api.observe import PASSED_ID_HEADER, REQUEST_ID
from snapferry.api.region import BASE_HEADER
from snapferry.control.access import KEY_HEADER
from snapferry.control.errors import RegionUnavailable
from snapferry.metrics import PeerMetrics, new_registry

PASSED_REQUEST_HEADERS = ("content-type", "accept", "x-ms-client-request-id")
PASSED_RESPONSE_HEADERS = ("content-type", "location", "azure-asyncoperation", "retry-after")
PRINCIPAL_HEADER = "x-snapferry-principal"


@dataclass(frozen=True)
class Reply:
    """A region's answer: status, the headers worth passing on, the body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RegionLinks:
    """HTTP to every region, with the front door's key. Open on start, close on shutdown."""

    def __init__(
        self,
        regions: dict[str, str],
        key: str,
        *,
        timeout: float = 60.0,
        metrics: PeerMetrics | None = None,
    ) -> None:
        self.urls = {name: url.rstrip("/") for name, url in regions.items()}
        self.key = key
        self.timeout = timeout
        self.metrics = metrics or PeerMetrics(new_registry())
        self._session: aiohttp.ClientSession | None = None

    @property
    def names(self) -> list[str]:
        return list(self.urls)

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            connector=aiohttp.TCPConnector(limit=256),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self,
        region: str,
        method: str,
        path_qs: str,
        *,
        base: str,
        principal: str = "",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Send one request to a region (with the request id being served); RegionUnavailable
        if it cannot be reached, or does not answer within ``timeout`` (default: the links')."""
        assert self._session is not None, "RegionLinks.open() was not called"
        sent = {k: v for k, v in (headers or {}).items() if k.lower() in PASSED_REQUEST_HEADERS}
        sent.update({KEY_HEADER: self.key, BASE_HEADER: base, PRINCIPAL_HEADER: principal})
        request_id = REQUEST_ID.get()
        if request_id:
            sent[PASSED_ID_HEADER] = request_id
        limit = aiohttp.ClientTimeout(total=timeout) if timeout else self._session.timeout
        try:
            with self.metrics.timing(region, method) as answered:
                async with self._session.request(
                    method, self.urls[region] + path_qs, headers=sent, data=body, timeout=limit
                ) as response:
                    data = await response.read()
                    answered(response.status)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise RegionUnavailable(
                f"region {region} is not answering ({type(exc).__name__}); retry later",
                target=region,
            ) from None
        passed = {k: v for k, v in response.headers.items() if k.lower() in PASSED_RESPONSE_HEADERS}
        return Reply(response.status, passed, data)

    async def call_reachable(
        self,
        method: str,
        path_qs: str,
        *,
        base: str,
        principal: str = "",
        timeout: float | None = None,
        regions: list[str] | None = None,
    ) -> dict[str, Reply]:
        """The same request to every region (or to ``regions``) at once; regions that do not
        answer (within ``timeout``) are left out."""
        names = self.names if regions is None else regions
        replies = await asyncio.gather(
            *(
                self.call(n, method, path_qs, base=base, principal=principal, timeout=timeout)
                for n in names
            ),
            return_exceptions=True,
        )
        out = {}
        for name, reply in zip(names, replies, strict=True):
            if isinstance(reply, BaseException):
                if not isinstance(reply, RegionUnavailable):
                    raise reply
                continue
            out[name] = reply
        return out
