"""Regions in this process, for tests of copies without HTTP: each an Engine, a RegionService
and a PeerService, with copy workers reaching each other through ``LocalPeers`` (wrapped as a
test likes: faults, counters)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from snapferry.control.access import Signer
from snapferry.control.creation import Region
from snapferry.control.ids import ResourceId
from snapferry.control.peering import PeerService
from snapferry.control.service import RegionService
from snapferry.engine import Engine
from snapferry.meta import records
from snapferry.replication.local import LocalPeers, PeerSource
from snapferry.replication.peers import PeerClient
from snapferry.replication.worker import CopyWorker

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"


class InProcessRegions:
    """Named regions under root. ``wrap`` turns each region's peer client into what its worker
    uses (default: as it is)."""

    def __init__(
        self,
        root: Path,
        names: list[str],
        *,
        wrap: Callable[[str, PeerClient], PeerClient] | None = None,
        lease_seconds: float = 2.0,
    ) -> None:
        self.engines: dict[str, Engine] = {}
        self.services: dict[str, RegionService] = {}
        self.workers: dict[str, CopyWorker] = {}
        self.sources: dict[str, PeerSource] = {}
        self.peers = LocalPeers(self.sources)
        self.lease_seconds = lease_seconds
        for name in names:
            engine = Engine.open(root / name)
            self.engines[name] = engine
            self.sources[name] = PeerService(name, engine, Signer(secrets.token_bytes(32)))
        for name in names:
            client: PeerClient = self.peers if wrap is None else wrap(name, self.peers)
            self.start_worker(name, client)

    def start_worker(self, name: str, client: PeerClient | None = None) -> CopyWorker:
        """A (new) copy worker for the region, running; its service uses it."""
        old = self.workers.get(name)
        worker = CopyWorker(
            self.engines[name],
            client or (old.peers if old else self.peers),
            lease_seconds=self.lease_seconds,
            poll=0.1,
        )
        worker.start()
        worker.resume()
        self.workers[name] = worker
        service = self.services.get(name)
        if service is None:
            self.services[name] = RegionService(
                Region(name), self.engines[name], Signer(secrets.token_bytes(32)), copier=worker
            )
        else:
            service.copies.copier = worker
        return worker

    def put(self, region: str, rtype: str, group: str, name: str, body: dict[str, Any]) -> Any:
        """PUT the resource (``location`` is the region); its ARM JSON."""
        rid = ResourceId.of(SUBSCRIPTION, group, rtype, name)
        return self.services[region].put(rid, {"location": region, **body})[0]

    def get(self, region: str, rtype: str, group: str, name: str) -> Any:
        return self.services[region].get(ResourceId.of(SUBSCRIPTION, group, rtype, name))

    def engine_id(self, region: str, rtype: str, group: str, name: str) -> str:
        """The engine disk or snapshot behind a resource."""
        key = ResourceId.of(SUBSCRIPTION, group, rtype, name).key
        with self.engines[region].db.connect() as conn:
            rec = records.get(conn, key)
        if rec is None or rec.engine_id is None:
            raise LookupError(f"no resource {key} in {region}")
        return rec.engine_id

    def wait(self, region: str, rtype: str, group: str, name: str, timeout: float = 60) -> Any:
        """The resource once its creation ended and, for a copy, its copy too."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.get(region, rtype, group, name)
            props = found["properties"]
            done = props["provisioningState"] in ("Succeeded", "Failed") and (
                props.get("completionPercent", 100) == 100 or props["provisioningState"] == "Failed"
            )
            if done:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} is still {props['provisioningState']}")
            time.sleep(0.05)

    def report(self, region: str, target_id: str) -> dict[str, Any]:
        (found,) = self.services[region].copies.reports(SUBSCRIPTION, target_id)
        return found

    def close(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        for service in self.services.values():
            service.close()
        for engine in self.engines.values():
            engine.close()
