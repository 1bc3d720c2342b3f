"""ARM latency: GETs and snapshot PUTs through a running cloud under 32 concurrent clients.

A ``snapferry up`` cloud (front door + eastus + westus, loopback HTTP) runs in a child process;
32 asyncio clients share one aiohttp session. Figures:

* ARM GET of existing disks (16, round robin) through the front door: p50/p99 and requests/s.
* Snapshot PUT to LRO completion: each client snapshots its own empty disk back to back and polls
  the ``Azure-AsyncOperation`` URL at once, then every 20 ms, until ``Succeeded``.
  ``Retry-After`` is ignored on purpose: this measures the server. A client that honors
  ``Retry-After: 1`` (azure-core) polls once at once and then sleeps 1 s per poll, so it sees
  ~1 s or more whenever that first poll is not yet ``Succeeded``; the SDK is timed under the
  snapshot load and on an idle server.
* Peers, same load, same run, interleaved with the ARM GETs: the front door's
  ``/snapferry/health`` (same process and framework, no auth, no database) and a bare ASGI app on
  uvicorn in its own process (the raw framework floor).

Every answer's status is checked; errors are counted by kind and reported, never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

from _common import emit, median, parse_args, scratch
from snapferry.sdk import compute_client
from snapferry.testing.cloud import RunningCloud

CLIENTS = 32
GET_DISKS = 16
API = "?api-version=2024-03-02"
POLL_SECONDS = 0.02
LRO_TIMEOUT = 60.0
GROUP = "bench"

BARE_APP = """
import socket, uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"status":"ok"}'})

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
config = uvicorn.Config(app, http="httptools", lifespan="off", log_level="warning",
                        access_log=False)
uvicorn.Server(config).run(sockets=[sock])
"""

Step = Callable[[int, int], Awaitable[str | None]]


@dataclass
class Load:
    """Latencies (seconds) of the successful calls of one load phase, and errors by kind."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def ms(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")

    @staticmethod
    def pooled(loads: list[Load]) -> Load:
        out = Load()
        for load in loads:
            out.latencies += load.latencies
            out.errors.update(load.errors)
            out.seconds += load.seconds
        return out


class Arm:
    """The ARM wire as a bare HTTP client sees it. LRO answers are noted in ``acks`` (seconds
    to the 202) and ``polls`` (status GETs until the end)."""

    def __init__(self, session: aiohttp.ClientSession, cloud: dict[str, Any]) -> None:
        self.session = session
        self.cloud = cloud
        self.endpoint = cloud["endpoint"]
        self.sub = cloud["subscription"]
        self.headers = {"Authorization": f"Bearer {cloud['token']}"}
        self.acks: list[float] = []
        self.polls: list[int] = []

    def rid(self, rtype: str, name: str) -> str:
        group = f"/subscriptions/{self.sub}/resourceGroups/{GROUP}"
        return f"{group}/providers/Microsoft.Compute/{rtype}/{name}"

    def url(self, rtype: str, name: str) -> str:
        return f"{self.endpoint}{self.rid(rtype, name)}{API}"

    async def create_group(self) -> None:
        url = f"{self.endpoint}/subscriptions/{self.sub}/resourceGroups/{GROUP}{API}"
        async with self.session.put(url, json={"location": "eastus"}, headers=self.headers) as r:
            if r.status not in (200, 201):
                raise RuntimeError(f"resource group PUT answered {r.status}: {await r.text()}")

    async def put_and_wait(self, rtype: str, name: str, body: dict[str, Any]) -> str | None:
        """PUT, then poll the operation at once and every 20 ms (Retry-After ignored) until it
        ends. None on success, else the kind of error."""
        start = time.perf_counter()
        async with self.session.put(self.url(rtype, name), json=body, headers=self.headers) as r:
            await r.read()
            operation = r.headers.get("Azure-AsyncOperation")
            if r.status != 202 or not operation:
                return f"PUT {r.status}"
        self.acks.append(time.perf_counter() - start)
        deadline = time.monotonic() + LRO_TIMEOUT
        polls = 0
        while True:
            async with self.session.get(operation, headers=self.headers) as r:
                polls += 1
                if r.status != 200:
                    return f"poll {r.status}"
                status = (await r.json()).get("status")
            if status == "Succeeded":
                self.polls.append(polls)
                return None
            if status != "InProgress":
                return f"operation {status}"
            if time.monotonic() > deadline:
                return "operation timeout"
            await asyncio.sleep(POLL_SECONDS)

    async def create_disk(self, name: str) -> str | None:
        body = {
            "location": "eastus",
            "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1},
        }
        return await self.put_and_wait("disks", name, body)

    async def create_snapshot(self, disk: str, name: str) -> str | None:
        source = {"createOption": "Copy", "sourceResourceId": self.rid("disks", disk)}
        return await self.put_and_wait(
            "snapshots", name, {"location": "eastus", "properties": {"creationData": source}}
        )

    async def verify_snapshots(self, names: list[str]) -> Counter[str]:
        """Each named snapshot reads back 200 and Succeeded."""
        errors: Counter[str] = Counter()
        for name in names:
            async with self.session.get(self.url("snapshots", name), headers=self.headers) as r:
                if r.status != 200:
                    errors[f"verify GET {r.status}"] += 1
                elif (await r.json())["properties"].get("provisioningState") != "Succeeded":
                    errors["verify: not Succeeded"] += 1
        return errors


async def run_clients(step: Step, seconds: float, clients: int = CLIENTS) -> Load:
    """``clients`` tasks, each calling ``step(client, i)`` back to back until ``seconds`` have
    passed (``seconds=0``: once each). A step returns None on success or the kind of error;
    client-side exceptions (timeouts, refused connections) count as errors too."""
    load = Load()
    deadline = time.perf_counter() + seconds

    async def client(c: int) -> None:
        i = 0
        while i == 0 or time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                error = await step(c, i)
            except (TimeoutError, aiohttp.ClientError) as exc:
                error = type(exc).__name__
            if error is None:
                load.latencies.append(time.perf_counter() - start)
            else:
                load.errors[error] += 1
            i += 1

    start = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    load.seconds = time.perf_counter() - start
    return load


def getter(session: aiohttp.ClientSession, urls: list[str], headers: dict[str, str]) -> Step:
    """A step that GETs urls round robin and wants 200."""

    async def step(c: int, i: int) -> str | None:
        async with session.get(urls[(c + i) % len(urls)], headers=headers) as r:
            await r.read()
            return None if r.status == 200 else f"GET {r.status}"

    return step


@contextlib.contextmanager
def bare_server() -> Iterator[str]:
    """A minimal ASGI app on uvicorn (httptools) in a child process; yields its base URL."""
    proc = subprocess.Popen([sys.executable, "-c", BARE_APP], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield f"http://127.0.0.1:{int(proc.stdout.readline())}"
    finally:
        proc.kill()
        proc.wait()


async def wait_ready(session: aiohttp.ClientSession, url: str) -> None:
    for _ in range(200):
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(url) as r:
                if r.status == 200:
                    return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} never answered 200")


def sdk_snapshots(cloud: dict[str, Any], disk_id: str, prefix: str, until: float) -> Load:
    """azure-mgmt-compute ``begin_create_or_update(...).result()`` (it honors Retry-After: 1),
    one at a time, until ``time.perf_counter() >= until`` (at least once)."""
    from azure.core.exceptions import AzureError

    client = compute_client(cloud)
    source = {"createOption": "Copy", "sourceResourceId": disk_id}
    body = {"location": "eastus", "properties": {"creationData": source}}
    load = Load()
    while load.seconds == 0 or time.perf_counter() < until:
        start = time.perf_counter()
        name = f"{prefix}-{len(load.latencies) + load.error_count}"
        try:
            made = client.snapshots.begin_create_or_update(GROUP, name, body).result()
            if made.properties.provisioning_state != "Succeeded":
                load.errors[f"SDK {made.properties.provisioning_state}"] += 1
            else:
                load.latencies.append(time.perf_counter() - start)
        except AzureError as exc:
            load.errors[f"SDK {type(exc).__name__}"] += 1
        load.seconds += time.perf_counter() - start
    return load


@dataclass
class Results:
    gets: dict[str, list[Load]]  # "get", "health", "bare": one Load per round
    single: dict[str, Load]  # the same, one client alone
    disks: Load
    snapshots: Load
    acks: list[float]
    polls: list[int]
    sdk_loaded: Load
    sdk_idle: Load


async def measure(cloud: dict[str, Any], bare_url: str, reps: int, phase: float) -> Results:
    connector = aiohttp.TCPConnector(limit=4 * CLIENTS)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:
        arm = Arm(session, cloud)
        health_url = f"{arm.endpoint}/snapferry/health"
        await wait_ready(session, health_url)
        await wait_ready(session, bare_url)
        await arm.create_group()
        disks = [f"disk-{c:02d}" for c in range(CLIENTS)] + ["disk-sdk"]
        made = await run_clients(lambda c, _: arm.create_disk(disks[c]), 0, clients=len(disks))
        if made.errors:
            raise RuntimeError(f"creating the disks failed: {dict(made.errors)}")
        targets = {
            "get": getter(session, [arm.url("disks", d) for d in disks[:GET_DISKS]], arm.headers),
            "health": getter(session, [health_url], {}),
            "bare": getter(session, [bare_url + "/"], {}),
        }
        for step in targets.values():  # warm-up: connections open, caches filled
            await run_clients(step, min(phase, 0.3))
        single = {
            name: await run_clients(step, phase / 4, clients=1) for name, step in targets.items()
        }
        gets: dict[str, list[Load]] = {name: [] for name in targets}
        for _ in range(reps):  # interleaved, so drift on a shared machine hits all alike
            for name, step in targets.items():
                gets[name].append(await run_clients(step, phase))

        snapshots, sdk_loaded, sdk_idle = await snapshot_phase(arm, disks, phase * max(reps, 2))
    return Results(gets, single, made, snapshots, arm.acks, arm.polls, sdk_loaded, sdk_idle)


async def snapshot_phase(arm: Arm, disks: list[str], seconds: float) -> tuple[Load, Load, Load]:
    """Client c snapshots disks[c] back to back for ``seconds`` while the SDK, in a thread,
    snapshots the last disk one at a time; then the SDK alone on the idle server."""

    async def snapshot(c: int, i: int) -> str | None:
        return await arm.create_snapshot(disks[c], f"snap-{c:02d}-{i:04d}")

    arm.acks.clear()
    arm.polls.clear()
    sdk_disk = arm.rid("disks", disks[-1])
    until = time.perf_counter() + seconds - 1.5
    sdk = asyncio.to_thread(sdk_snapshots, arm.cloud, sdk_disk, "sdk-loaded", until)
    snapshots, sdk_loaded = await asyncio.gather(run_clients(snapshot, seconds), sdk)
    firsts = [f"snap-{c:02d}-0000" for c in range(CLIENTS)]
    snapshots.errors.update(await arm.verify_snapshots(firsts))
    until = time.perf_counter() + min(seconds / 3, 3.0)
    sdk_idle = await asyncio.to_thread(sdk_snapshots, arm.cloud, sdk_disk, "sdk-idle", until)
    return snapshots, sdk_loaded, sdk_idle


def describe(label: str, load: Load, rps: float) -> str:
    line = (
        f"{label:<30} p50 {load.ms(50):8.2f} ms  p99 {load.ms(99):8.2f} ms  {rps:8.1f} /s  "
        f"({len(load.latencies)} ok, {load.error_count} errors)"
    )
    return line + (f"  errors: {dict(load.errors)}" if load.errors else "")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    phase = 0.5 if args.quick else 3.0
    with scratch(args.dir) as root:
        cloud = RunningCloud.start(root / "cloud")
        try:
            with bare_server() as bare_url:
                res = asyncio.run(measure(cloud.cloud, bare_url, args.reps, phase))
        finally:
            cloud.kill()
        log_tail = cloud.log_tail()
    report(args.quick, args.reps, phase, res, log_tail)


def report(quick: bool, reps: int, phase: float, res: Results, log_tail: str) -> None:
    pooled = {name: Load.pooled(loads) for name, loads in res.gets.items()}
    rps = {name: median([load.rps for load in loads]) for name, loads in res.gets.items()}
    get, health, bare, snaps = pooled["get"], pooled["health"], pooled["bare"], res.snapshots
    first_poll = sum(1 for p in res.polls if p == 1) / len(res.polls) if res.polls else 0.0
    print(
        f"{CLIENTS} concurrent clients (asyncio + aiohttp, one session, one process; "
        f"{os.cpu_count()} CPUs shared with the servers); {reps} rounds of {phase:.1f} s per "
        "target, interleaved; p50/p99 pooled over rounds, req/s the median round"
    )
    print(describe(f"ARM GET disk ({GET_DISKS} disks)", get, rps["get"]))
    print(describe("peer: front door health", health, rps["health"]))
    print(describe("peer: bare ASGI on uvicorn", bare, rps["bare"]))
    print(
        f"ARM GET vs health: p50 x{get.ms(50) / health.ms(50):.1f}, req/s "
        f"x{rps['get'] / rps['health']:.3f}; vs bare: p50 x{get.ms(50) / bare.ms(50):.1f}, "
        f"req/s x{rps['get'] / rps['bare']:.3f}"
    )
    print(
        "one client alone, p50: "
        + ", ".join(f"{name} {load.ms(50):.2f} ms" for name, load in res.single.items())
    )
    print(describe(f"disk PUT to Succeeded ({CLIENTS} at once)", res.disks, res.disks.rps))
    print(describe("snapshot PUT to Succeeded", snaps, snaps.rps))
    print(
        f"  over {snaps.seconds:.1f} s; polled at once and every {POLL_SECONDS * 1000:.0f} ms, "
        "Retry-After ignored (this measures the server); the 202 itself took p50 "
        f"{_ms(res.acks, 50):.1f} ms, p99 {_ms(res.acks, 99):.1f} ms; {first_poll:.0%} done at "
        "the first poll"
    )
    print(
        "a client honoring Retry-After: 1 (azure-core polls once at once, then every 1 s) sees "
        f">= 1 s for the {1 - first_poll:.0%} not done at the first poll; SDK "
        f"begin_create_or_update().result() one at a time: under the snapshot load median "
        f"{res.sdk_loaded.ms(50) / 1000:.2f} s (of {len(res.sdk_loaded.latencies)}), idle "
        f"server median {res.sdk_idle.ms(50) / 1000:.3f} s (of {len(res.sdk_idle.latencies)})"
    )
    checked = [
        *pooled.items(),
        *((f"{name}_single", load) for name, load in res.single.items()),
        ("disk_put", res.disks),
        ("snapshot", snaps),
        ("sdk_loaded", res.sdk_loaded),
        ("sdk_idle", res.sdk_idle),
    ]
    errors = {name: dict(load.errors) for name, load in checked if load.errors}
    if errors:
        print(f"ERRORS: {errors}\nserver log tail:\n{log_tail[-2000:]}")
    emit(
        {
            "bench": "arm_latency",
            "quick": quick,
            "reps": reps,
            "clients": CLIENTS,
            "cpus": os.cpu_count(),
            "phase_seconds": phase,
            **_figures("get", get, rps["get"]),
            **_figures("health", health, rps["health"]),
            **_figures("bare", bare, rps["bare"]),
            **{f"{name}_single_p50_ms": round(load.ms(50), 3) for name, load in res.single.items()},
            "get_vs_health_p50": round(get.ms(50) / health.ms(50), 2),
            "get_vs_bare_p50": round(get.ms(50) / bare.ms(50), 2),
            "get_vs_health_rps": round(rps["get"] / rps["health"], 4),
            "get_vs_bare_rps": round(rps["get"] / rps["bare"], 4),
            "disk_put_p50_ms": round(res.disks.ms(50), 2),
            "snapshot_put_p50_ms": round(snaps.ms(50), 2),
            "snapshot_put_p99_ms": round(snaps.ms(99), 2),
            "snapshot_ack_p50_ms": round(_ms(res.acks, 50), 2),
            "snapshots_per_s": round(snaps.rps, 2),
            "snapshots": len(snaps.latencies),
            "snapshot_done_at_first_poll": round(first_poll, 3),
            "snapshot_poll_ms": POLL_SECONDS * 1000,
            "sdk_snapshot_loaded_s": round(res.sdk_loaded.ms(50) / 1000, 3),
            "sdk_snapshot_idle_s": round(res.sdk_idle.ms(50) / 1000, 3),
            "errors": sum(load.error_count for _, load in checked),
            "error_kinds": errors,
        }
    )


def _ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(seconds, q)) * 1000 if seconds else float("nan")


def _figures(name: str, load: Load, rps: float) -> dict[str, Any]:
    return {
        f"{name}_p50_ms": round(load.ms(50), 3),
        f"{name}_p99_ms": round(load.ms(99), 3),
        f"{name}_rps": round(rps, 1),
        f"{name}_requests": len(load.latencies),
        f"{name}_errors": load.error_count,
    }


if __name__ == "__main__":
    main()
