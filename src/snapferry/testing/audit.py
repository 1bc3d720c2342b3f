"""What must hold after any fault scenario, checked from outside a running cloud: no region
operation left InProgress, the front door agreeing with every region on every resource, and
every region's scrub clean."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import Engine

from snapferry.client.maintenance import ServingRegion, remote_pass
from snapferry.cloud.config import CloudConfig
from snapferry.control.render import PROVISIONING
from snapferry.meta import records
from snapferry.meta.db import open_database, sqlite_url
from snapferry.meta.records import Record

API = "api-version=2024-03-02"


def audit(
    cloud: dict[str, Any],
    data_dir: Path,
    *,
    databases: Mapping[str, str] | None = None,
    settle_seconds: float = 10.0,
) -> None:
    """Raise AssertionError unless, for each region of the cloud whose cloud.json is ``cloud``
    and data directory ``data_dir``: no operation stays InProgress (within ``settle_seconds``);
    the front door lists exactly the disks and snapshots the region holds of the cloud's
    subscription and GETs each in the region's state; a scrub finds nothing wrong.
    ``databases``: the database URL of a region configured with its own ``db_url``."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {cloud['token']}"
    held: list[Record] = []
    key = CloudConfig(data_dir=data_dir).frontdoor_key_file.read_text().strip()
    for region in cloud["regions"]:
        db_url = (databases or {}).get(region)
        db_url = db_url or sqlite_url(data_dir / "regions" / region / "meta.db")
        db = open_database(db_url)
        try:
            held += settled(db, cloud["subscription"], region, settle_seconds)
        finally:
            db.dispose()
        served = ServingRegion(cloud["metrics"][region].removesuffix("/metrics"), key)
        report = remote_pass(served, "scrub", {}, None)
        assert report["clean"], f"{region}: scrub found {report['problems']}"
    base = f"{cloud['endpoint']}/subscriptions/{cloud['subscription']}"
    for rtype in ("disks", "snapshots"):
        listed: set[str] = set()
        url: str | None = f"{base}/providers/Microsoft.Compute/{rtype}?{API}"
        while url:
            reply = session.get(url, timeout=30)
            assert reply.status_code == 200, reply.text
            page = reply.json()
            listed |= {r["id"].lower() for r in page["value"]}
            url = page.get("nextLink")
        holding = {r.id.lower() for r in held if r.rtype == rtype}
        assert listed == holding, f"{rtype}: front door lists {listed}, regions hold {holding}"
    for rec in held:
        reply = session.get(f"{cloud['endpoint']}{rec.id}?{API}", timeout=30)
        assert reply.status_code == 200, f"{rec.id}: {reply.status_code} {reply.text[:200]}"
        props = reply.json()["properties"]
        state = props["provisioningState"]
        failed_copy = state == "Failed" and "copyCompletionError" in props
        assert state == PROVISIONING[rec.state] or failed_copy, f"{rec.id}: {state}, {rec.state}"


def settled(
    db: Engine, subscription: str, where: str, settle_seconds: float = 10.0
) -> list[Record]:
    """The subscription's records in the region database ``db`` once no operation there is
    InProgress; AssertionError (naming ``where``) if one still is after ``settle_seconds``."""
    deadline = time.monotonic() + settle_seconds
    while True:
        with db.connect() as conn:
            running = records.running_operations(conn)
            held = records.all_records(conn, subscription=subscription)
        if not running:
            return held
        assert time.monotonic() < deadline, f"{where}: still InProgress: {running}"
        time.sleep(0.05)
