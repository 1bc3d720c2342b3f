"""``FaultyPeer``: a ``PeerClient`` wrapper that drops, delays or corrupts calls, for tests.

Faults are drawn from a seeded generator, so a run repeats. A drop raises ``PeerUnavailable``
before the call reaches the peer (or after, for ``drop_after``: the peer did the work, the
answer was lost); a delay sleeps first; a corruption flips one byte of a page frame's payload
or of one stored frame (which the caller's verification must catch). A gate (a file path) holds
each plan, pages and frames call while that file exists, so a test decides when a copy may move on.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from snapferry.engine.delta import ChunkDelta, CopyPlan
from snapferry.errors import PeerUnavailable
from snapferry.replication.peers import Grant, PageFrame, PeerClient, SourceInfo


@dataclass
class Faults:
    """Probabilities of each fault per call, and the delay applied."""

    drop: float = 0.0
    drop_after: float = 0.0
    corrupt: float = 0.0
    delay: float = 0.0
    delay_seconds: float = 0.05
    seed: int = 0
    gate: Path | None = None
    rng: random.Random = field(init=False)
    injected: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """``"drop=0.1,corrupt=0.05,delay=0.2,delay_seconds=0.1,seed=3,gate=/tmp/hold"``."""
        values: dict[str, float] = {}
        gate: Path | None = None
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, value = part.partition("=")
            if name == "gate":
                if not value.strip():
                    raise ValueError("peer fault gate needs a file path")
                gate = Path(value)
                continue
            if name not in ("drop", "drop_after", "corrupt", "delay", "delay_seconds", "seed"):
                raise ValueError(f"unknown peer fault {name!r}")
            values[name] = float(value)
        seed = int(values.pop("seed", 0))
        return cls(
            drop=values.get("drop", 0.0),
            drop_after=values.get("drop_after", 0.0),
            corrupt=values.get("corrupt", 0.0),
            delay=values.get("delay", 0.0),
            delay_seconds=values.get("delay_seconds", 0.05),
            seed=seed,
            gate=gate,
        )

    def hit(self, kind: str) -> bool:
        chance = float(getattr(self, kind))
        if chance and self.rng.random() < chance:
            self.injected[kind] = self.injected.get(kind, 0) + 1
            return True
        return False


class FaultyPeer:
    """Wraps a PeerClient with ``Faults``."""

    def __init__(self, inner: PeerClient, faults: Faults) -> None:
        self.inner = inner
        self.faults = faults

    @property
    def regions(self) -> list[str]:
        return self.inner.regions

    async def _before(self, what: str) -> None:
        if self.faults.hit("delay"):
            await asyncio.sleep(self.faults.delay_seconds)
        if self.faults.hit("drop"):
            raise PeerUnavailable(f"injected fault: {what} dropped")

    async def _gated(self, what: str) -> None:
        while self.faults.gate is not None and self.faults.gate.exists():
            await asyncio.sleep(0.05)
        await self._before(what)

    def _after(self, what: str) -> None:
        if self.faults.hit("drop_after"):
            raise PeerUnavailable(f"injected fault: the answer to {what} was lost")

    async def health(self, region: str) -> None:
        await self.inner.health(region)  # no fault: it must not shift the seeded draws

    async def resolve(self, region: str, resource_id: str) -> SourceInfo | None:
        await self._before("resolve")
        found = await self.inner.resolve(region, resource_id)
        self._after("resolve")
        return found

    async def grant(self, region: str, unique_id: str) -> Grant:
        await self._before("grant")
        granted = await self.inner.grant(region, unique_id)
        self._after("grant")
        return granted

    async def plan(
        self, region: str, engine_id: str, sas: str, candidates: list[str], full: bool
    ) -> tuple[str | None, CopyPlan]:
        await self._gated("plan")
        planned = await self.inner.plan(region, engine_id, sas, candidates, full)
        self._after("plan")
        return planned

    async def pages(self, region: str, engine_id: str, sas: str, piece: ChunkDelta) -> PageFrame:
        await self._gated("pages")
        frame = await self.inner.pages(region, engine_id, sas, piece)
        self._after("pages")
        if frame.payload and self.faults.hit("corrupt"):
            body = bytearray(frame.payload)
            body[self.faults.rng.randrange(len(body))] ^= 0x5A
            frame = replace(frame, payload=bytes(body))
        return frame

    async def frames(
        self, region: str, engine_id: str, sas: str, oids: list[bytes]
    ) -> Sequence[bytes | memoryview]:
        await self._gated("frames")
        got = await self.inner.frames(region, engine_id, sas, oids)
        self._after("frames")
        if got and self.faults.hit("corrupt"):
            f = self.faults.rng.randrange(len(got))
            body = bytearray(got[f])
            body[self.faults.rng.randrange(len(body))] ^= 0x5A
            got = [*got[:f], bytes(body), *got[f + 1 :]]
        return got

    async def close(self) -> None:
        await self.inner.close()
