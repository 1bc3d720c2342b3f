"""Running regions and the front door: ``snapferry up`` hosts all of them in one process,
``snapferry serve region|frontdoor`` one each. Regions and front door always talk over HTTP,
so both shapes run the same code path.

Shutdown is graceful on SIGINT/SIGTERM: servers stop accepting, running operations finish,
engines close. Every acknowledged resource is already durable, so a ``kill -9`` loses nothing
acknowledged either (``RegionService.recover`` settles what it cut short).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import uvicorn

from snapferry.api.blob import BlobApp
from snapferry.api.common import ASGIApp
from snapferry.api.frontdoor import FrontDoor, Groups, Index, RegionLinks, frontdoor_app
from snapferry.api.observe import Observed
from snapferry.api.region import RegionRouter, region_app
from snapferry.cloud.config import CloudConfig, RegionConfig, split_listen
from snapferry.cloud.guard import (
    Limits,
    connection_budget,
    guarded,
    quiet_exhaustion,
    raise_file_limit,
)
from snapferry.cloud.tls import TlsFiles, ensure_certificates
from snapferry.control.access import Signer, load_key
from snapferry.control.creation import Region
from snapferry.control.dataplane import DataPlane
from snapferry.control.peering import SYSTEM_KEY_FILE, PeerService
from snapferry.control.schedules import scheduled_passes
from snapferry.control.service import RegionService
from snapferry.control.upkeep import Upkeep
from snapferry.engine import Engine
from snapferry.engine.space import Reserve
from snapferry.errors import InvalidInput
from snapferry.files import read_or_create, write_atomic
from snapferry.identity import Registry
from snapferry.meta.db import open_database, sqlite_url
from snapferry.metrics import (
    CopyMetrics,
    CopyStates,
    DataPlaneMetrics,
    HttpMetrics,
    PeerMetrics,
    ScrubMetrics,
    ZoneRepairMetrics,
    new_registry,
)
from snapferry.replication.faults import Faults, FaultyPeer
from snapferry.replication.http import HttpPeerClient
from snapferry.replication.peers import PeerClient
from snapferry.replication.worker import CopyWorker

log = logging.getLogger("snapferry.cloud")
ADMIN_TOKEN_SECONDS = 365 * 86400
ACCEPT_BATCH = 64
"""Connections the event loop accepts in one go (asyncio takes its listen backlog for this):
a few, so a flood is turned away a batch at a time, before it can use up the open files."""
LISTEN_BACKLOG = 4096
"""Connections the kernel may queue for accepting (a flood must not make others wait on a
dropped SYN's retry)."""
ISSUER = "snapferry"


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the host (several share one process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def frontdoor_key(config: CloudConfig) -> str:
    """The secret regions expect from their front door (made once)."""
    made = read_or_create(config.frontdoor_key_file, lambda: secrets.token_urlsafe(32).encode())
    return made.decode().strip()


def peer_key(config: CloudConfig) -> str:
    """The secret regions present to each other to copy snapshots (made once)."""
    made = read_or_create(config.peer_key_file, lambda: secrets.token_urlsafe(32).encode())
    return made.decode().strip()


@dataclass(frozen=True)
class Peering:
    """How a region reaches its peers: their URLs by name (a dict the host may still be
    filling, shared by every region of the process) and the shared peer key."""

    urls: dict[str, str]
    key: str

    @classmethod
    def configured(cls, config: CloudConfig) -> Peering:
        """The peers a region of config reaches: every region with a ``url``."""
        urls = {r.name: str(r.url) for r in config.regions if r.url}
        return cls(urls, peer_key(config))


def bind(listen: str) -> socket.socket:
    host, port = split_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only for sockets
    # made with it, and without it every response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(
            f"cannot listen on {listen}: {exc.strerror or exc}; pick another with --port or "
            "the configuration's listen"
        ) from None
    sock.set_inheritable(True)
    return sock


PORT_FILE = "listen-port"
"""Where a region listening on "any free port" remembers the one it got."""


def _bind_region(listen: str, directory: Path) -> socket.socket:
    """Bind a region's listener. On "any free port" (port 0), the port of the previous start is
    taken again when it is free, so access URLs handed out before a restart keep working."""
    host, port = split_listen(listen)
    remembered = directory / PORT_FILE
    if port == 0:
        with contextlib.suppress(OSError, ValueError, InvalidInput):
            previous = int(remembered.read_text().strip())
            if 0 < previous < 65536:
                return bind(f"{host}:{previous}")
    sock = bind(listen)
    if port == 0:
        write_atomic(remembered, f"{sock.getsockname()[1]}\n".encode())
    return sock


def _url(sock: socket.socket, scheme: str = "http") -> str:
    host, port = sock.getsockname()[:2]
    return f"{scheme}://{host}:{port}"


@dataclass
class Hosted:
    """What one process serves: apps on bound sockets, and what to close after."""

    apps: list[tuple[ASGIApp, socket.socket, TlsFiles | None]] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)
    starters: list[Callable[[], None]] = field(default_factory=list)
    """Run once every app serves (copy workers: their peers must be reachable)."""
    stop: Callable[[], None] = lambda: None
    """Asks ``serve`` to shut down gracefully, from any thread (set once it runs)."""

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception:
                log.exception("closing failed")


def open_region(
    config: RegionConfig, root: Path, key: str, hosted: Hosted, peering: Peering
) -> str:
    """Open a region, recover it, and add its app and copy worker; returns its URL (also
    entered in ``peering.urls``)."""
    directory = config.directory(root)
    reserve = Reserve(directory, config.reserve_percent, config.reserve_mib)
    engine = Engine.open(directory, db_url=config.db_url, reserve=reserve, zones=config.zones)
    hosted.closers.append(engine.close)
    sock = _bind_region(config.listen, directory)
    url = _url(sock)
    peering.urls[config.name] = config.url or url
    signer = Signer(load_key(directory))
    registry = new_registry()
    peers: PeerClient = HttpPeerClient(
        peering.urls, peering.key, me=config.name, metrics=PeerMetrics(registry)
    )
    if config.peer_faults:
        peers = FaultyPeer(peers, Faults.parse(config.peer_faults))
    copier = CopyWorker(
        engine,
        peers,
        lease_seconds=config.copy_lease_seconds,
        streams=config.copy_streams,
        max_jobs=config.copy_jobs,
        event_retention_seconds=config.copy_event_days * 86400,
        stall_seconds=config.copy_stall_seconds,
        metrics=CopyMetrics(registry),
    )
    service = RegionService(
        Region(config.name, config.zones, config.page_size),
        engine,
        signer,
        data_url=config.url or url,
        operation_delay=config.operation_delay,
        copier=copier,
        max_active_copies=config.max_active_copies,
        copy_stall_seconds=config.copy_stall_seconds,
    )
    hosted.closers.append(service.close)
    registry.register(CopyStates(service.copies.counts))
    service.recover()
    passes = scheduled_passes(
        engine,
        scrub_hours=config.scrub_hours,
        gc_hours=config.gc_hours,
        compact_hours=config.compact_hours,
        repair_hours=config.repair_hours,
        scrub_metrics=ScrubMetrics(registry),
        repair_metrics=ZoneRepairMetrics(registry),
    )
    upkeep = Upkeep(engine, service.drop_orphans, config.upkeep_seconds, passes)
    upkeep.start()
    hosted.closers.append(upkeep.stop)
    copier.start()  # claims nothing until started: see Hosted.starters
    hosted.closers.append(copier.stop)
    hosted.starters.append(copier.resume)
    blobs = BlobApp(
        DataPlane(config.name, engine, signer),
        read_buffer_bytes=config.read_buffer_mib * 2**20,
        metrics=DataPlaneMetrics(registry),
    )
    hosted.closers.append(blobs.close)
    system = Signer(read_or_create(directory / SYSTEM_KEY_FILE, lambda: secrets.token_bytes(32)))
    arm = region_app(
        service,
        key=key,
        peers=PeerService(config.name, engine, system),
        peer_key=peering.key,
        metrics=registry,
    )
    router = RegionRouter(config.name, arm, blobs)
    hosted.apps.append((Observed(router, HttpMetrics(registry), front_door_key=key), sock, None))
    return url


def open_frontdoor(
    config: CloudConfig,
    regions: dict[str, str],
    key: str,
    hosted: Hosted,
    sock: socket.socket | None = None,
) -> tuple[str, Registry]:
    """Open the front door over the given region URLs (on sock, else binding its listen
    address); returns its URL and principal registry."""
    directory = config.data_dir / "frontdoor"
    directory.mkdir(parents=True, exist_ok=True)
    db = open_database(sqlite_url(directory / "frontdoor.db"))
    hosted.closers.append(db.dispose)
    registry = Registry(db, directory, issuer=ISSUER)
    sock = sock or bind(config.listen)
    tls = ensure_certificates(directory / "tls") if config.tls else None
    url = _url(sock, "https" if tls else "http")
    wildcard = sock.getsockname()[0] in ("0.0.0.0", "::")
    public = config.public_url or (None if wildcard else url)
    metrics = new_registry()
    links = RegionLinks(regions, key, metrics=PeerMetrics(metrics))
    door = FrontDoor(registry, Groups(db, list(regions)), links, Index(db), public_url=public)
    app = Observed(frontdoor_app(door, metrics), HttpMetrics(metrics))
    hosted.apps.append((app, sock, tls))
    return public or url, registry


def open_cloud(config: CloudConfig, hosted: Hosted) -> Callable[[], dict[str, Any]]:
    """Open every region of ``config`` and the front door over them into ``hosted`` (one
    process: ``snapferry up``), the front door's port first (a busy port must not leave regions
    behind); returns what writes cloud.json, to run once they serve."""
    front = bind(config.listen)
    key = frontdoor_key(config)
    peering = Peering({}, peer_key(config))
    regions = {
        r.name: open_region(r, config.data_dir, key, hosted, peering) for r in config.regions
    }
    endpoint, registry = open_frontdoor(config, regions, key, hosted, front)
    return lambda: write_cloud_json(config, endpoint, registry, regions)


def write_cloud_json(
    config: CloudConfig, endpoint: str, registry: Registry, regions: dict[str, str]
) -> dict[str, Any]:
    """Make the admin (once), mint it a token, and write ``DATA_DIR/cloud.json`` (0600);
    ``regions``: each region's URL, for its metrics URL."""
    subscription = config.subscription or (
        read_or_create(config.data_dir / "subscription", lambda: str(uuid.uuid4()).encode())
        .decode()
        .strip()
    )
    admin = registry.ensure_admin(subscription=subscription)
    if admin.role_for(subscription) != "Owner":  # the configured subscription changed
        admin = registry.set_role(admin.id, subscription, "Owner")
    token, expires = registry.mint(admin.id, ADMIN_TOKEN_SECONDS)
    cloud: dict[str, Any] = {
        "endpoint": endpoint,
        "token": token,
        "subscription": subscription,
        "regions": [r.name for r in config.regions],
        "tenant": registry.tenant,
        "expiresOn": int(expires),
        "metrics": {
            "frontdoor": endpoint.rstrip("/") + "/metrics",
            **{name: url.rstrip("/") + "/metrics" for name, url in regions.items()},
        },
    }
    if config.tls:
        cloud["ca"] = str(config.data_dir / "frontdoor" / "tls" / "ca.pem")
    write_atomic(config.data_dir / "cloud.json", (json.dumps(cloud, indent=2) + "\n").encode())
    return cloud


async def serve(
    hosted: Hosted, ready: Callable[[], None] | None = None, limits: Limits | None = None
) -> None:
    """Serve every app until SIGINT or SIGTERM (when run in the main thread) or
    ``hosted.stop()``, then shut down gracefully; each listener under ``limits``
    (``cloud.guard``)."""
    limits = limits or Limits()
    files = raise_file_limit()
    cap = limits.max_connections or connection_budget(len(hosted.apps), files)
    servers = []
    for app, sock, tls in hosted.apps:
        where = ":".join(str(part) for part in sock.getsockname()[:2])
        config = uvicorn.Config(
            app,
            http=guarded(replace(limits, max_connections=cap), f"listener {where}"),
            timeout_keep_alive=max(1, round(limits.keep_alive)),
            backlog=ACCEPT_BATCH,
            log_level="warning",
            log_config=None,  # uvicorn's records go to the process's log (cloud.logs)
            access_log=False,  # it would log queries, where a SAS travels
            lifespan="on",
            timeout_graceful_shutdown=30,
            ssl_certfile=str(tls.server_cert) if tls else None,
            ssl_keyfile=str(tls.server_key) if tls else None,
        )
        servers.append(_Server(config))

    def stop_all() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    quiet_exhaustion(loop)

    def stop_from_anywhere() -> None:
        loop.call_soon_threadsafe(stop_all)

    hosted.stop = stop_from_anywhere
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop_all)
    tasks = [
        asyncio.create_task(server.serve(sockets=[app[1]]))
        for server, app in zip(servers, hosted.apps, strict=True)
    ]
    while not all(s.started for s in servers):
        if any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.01)
    if all(s.started for s in servers):
        for _app, sock, _tls in hosted.apps:
            # the kernel may queue many more than the loop accepts at a time (see ACCEPT_BATCH)
            sock.listen(LISTEN_BACKLOG)
        for start in hosted.starters:
            start()
        if ready is not None:
            ready()
    await asyncio.gather(*tasks)
