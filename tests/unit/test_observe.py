"""What every request leaves behind: an id it answers with (a region takes its front door's
only), one metrics series per route template whatever the caller sends, and a log line no
caller can split into two."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from snapferry.api.common import route_template
from snapferry.api.observe import PASSED_ID_HEADER, REQUEST_ID, Observed
from snapferry.cloud import logs
from snapferry.control.access import KEY_HEADER
from snapferry.metrics import HttpMetrics, exposition, new_registry

PASSED = "0b6c2a52-57a3-4bb0-9d3b-7d3c0c0e2f11"


def serve(app: Observed, path: str, headers: dict[str, str]) -> tuple[int, dict[bytes, bytes]]:
    """One GET through app; its status and headers."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], dict(sent[0]["headers"])


async def teapot(scope: Any, receive: Any, send: Any) -> None:
    assert REQUEST_ID.get() is not None  # what every log line of the request names
    await send({"type": "http.response.start", "status": 418, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def forwarding(scope: Any, receive: Any, send: Any) -> None:
    """As the front door's catch-all route is matched (the rest is teapot)."""
    if scope["path"].startswith("/subscriptions/"):
        scope["route"] = SimpleNamespace(path="/subscriptions/{rest:path}")
    await teapot(scope, receive, send)


def test_a_region_takes_the_request_id_of_its_front_door_only() -> None:
    region = Observed(teapot, None, front_door_key="door-key")
    _, headers = serve(region, "/x", {PASSED_ID_HEADER: PASSED, KEY_HEADER: "door-key"})
    assert headers[b"x-ms-request-id"] == PASSED.encode()
    for forged in ({PASSED_ID_HEADER: PASSED}, {PASSED_ID_HEADER: PASSED, KEY_HEADER: "guess"}):
        _, headers = serve(region, "/x", forged)
        assert headers[b"x-ms-request-id"] != PASSED.encode()
    _, headers = serve(region, "/x", {PASSED_ID_HEADER: "not\nan id", KEY_HEADER: "door-key"})
    assert len(headers[b"x-ms-request-id"]) == 36
    assert REQUEST_ID.get() is None  # reset after each request


def test_route_labels_stay_few_whatever_the_paths() -> None:
    words = ["disks", "snapshots", "providers", "Microsoft.Compute", "beginGetAccess", "x"]
    routes = set()
    for a, b, c, d in itertools.product(words, repeat=4):
        routes.add(route_template(f"/subscriptions/s/resourceGroups/g/{a}/{b}/{c}/n/{d}"))
        routes.add(route_template(f"/subscriptions/s/{a}/{b}/{c}/{d}"))
    assert routes <= {"unmatched"} | {
        route_template(
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks/d/beginGetAccess"
        ),
        route_template(
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/"
            "snapshots/d/beginGetAccess"
        ),
    }
    metrics = HttpMetrics(registry := new_registry())
    app = Observed(forwarding, metrics)
    for i in range(50):
        serve(
            app,
            f"/subscriptions/s{i}/resourceGroups/g{i}/providers/Microsoft.Compute/disks/d{i}",
            {},
        )
        serve(app, f"/anything/{i}", {})
    series = [
        line
        for line in exposition(registry).decode().splitlines()
        if line.startswith("snapferry_http_requests_total")
    ]
    assert len(series) == 2 and all(line.endswith(" 50.0") for line in series)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_callers_path_cannot_forge_a_log_line(fmt: str) -> None:
    stream = io.StringIO()
    logs.configure(fmt, "debug", stream)
    try:
        serve(Observed(teapot, None), "/x\n2026-12-02T00:00:00.000Z ERROR forged", {})
    finally:
        logging.getLogger().handlers.clear()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "\\x0a2026" in lines[0] and PASSED not in lines[0]
