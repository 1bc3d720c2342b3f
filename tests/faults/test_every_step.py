"""Every database write of an operation failed in turn with a disk I/O error: a snapshot's
creation, a snapshot's and a disk's deletion, a resource group's creation and deletion (the
front door's own commits), and the front door's index of where resources live.

For each operation, a clean run counts the statements that write (INSERT, UPDATE, DELETE, on
the region's database or the front door's); then, for each of them, a fresh instance of the
operation runs with exactly that statement failing. Whatever the step, the client is told
success or a named storage error (never ``InternalError``), no operation stays InProgress, the
front door and the region agree on every resource of the group, a retry succeeds, and every
snapshot made reads back what its disk held then. At the end the cloud passes its audit
(``snapferry.testing.audit``: the same for every resource, and a clean scrub)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import sqlalchemy
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from snapferry.control.render import PROVISIONING
from snapferry.meta import records
from snapferry.meta.db import open_database, sqlite_url
from snapferry.sdk import connect
from snapferry.testing.arm import snapshot_body, write_pages
from snapferry.testing.audit import audit, settled
from snapferry.testing.db_faults import FailingStatements
from snapferry.testing.inprocess import cloud_in_this_process

pytestmark = pytest.mark.slow
CONFIG = '[[regions]]\nname = "eastus"\n'
GROUP = "steps"
RNG = np.random.default_rng(5)
DATA = RNG.bytes(3 * 2**20)
CHANGE = 64 * 2**10
WRITES = ("INSERT", "UPDATE", "DELETE")
TAIL = 0.5  # seconds the background takes to finish what an operation left it
NAMED = {"StorageIOError"}  # what a disk I/O error is called (docs/api.md)


def writes(sql: str) -> bool:
    return sql.lstrip()[:6].upper() in WRITES


def signature(sql: str) -> str:
    """A statement's first words: its verb and table."""
    return " ".join(sql.split()[:3])


@dataclass
class Cloud:
    compute: ComputeManagementClient
    groups: ResourceManagementClient
    faults: FailingStatements
    region_db: sqlalchemy.Engine
    doc: dict[str, Any]  # cloud.json
    data_dir: Path
    subscription: str
    disk_id: str
    disk: bytearray  # what disk d holds (its first len(DATA) bytes; the rest is zero)
    expected: dict[str, bytes]  # what each snapshot of it must read back
    verified: set[str]  # snapshots read back once (again by the last test)


def write_disk(c: Cloud, name: str = "") -> None:
    """Change 64 KiB of disk d somewhere (through a Write SAS, as a customer does)."""
    offset = int(RNG.integers(0, (len(DATA) - CHANGE) // 512)) * 512
    data = RNG.bytes(CHANGE)
    write_pages(c.compute, GROUP, "d", offset, data)
    c.disk[offset : offset + CHANGE] = data


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    data_dir = tmp_path_factory.mktemp("cloud")
    faults = FailingStatements(sqlalchemy.Engine)
    try:
        with cloud_in_this_process(data_dir, CONFIG) as doc:
            compute = connect(ComputeManagementClient, doc, retry_total=0)
            groups = connect(ResourceManagementClient, doc, retry_total=0)
            groups.resource_groups.create_or_update(GROUP, {"location": "eastus"})
            body = {
                "location": "eastus",
                "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1},
            }
            disk = compute.disks.begin_create_or_update(GROUP, "d", body).result()
            region_db = open_database(sqlite_url(data_dir / "regions" / "eastus" / "meta.db"))
            c = Cloud(
                compute,
                groups,
                faults,
                region_db,
                doc,
                data_dir,
                doc["subscription"],
                str(disk.id),
                bytearray(len(DATA)),
                {},
                set(),
            )
            write_pages(compute, GROUP, "d", 0, DATA)
            c.disk[:] = DATA
            try:
                yield c
            finally:
                region_db.dispose()
    finally:
        faults.close()


Step = Callable[[Cloud, str], None]


def make_snapshot(c: Cloud, name: str) -> None:
    c.expected[name] = bytes(c.disk)
    c.compute.snapshots.begin_create_or_update(GROUP, name, snapshot_body(c.disk_id)).result()


def snapshot_with_a_child(c: Cloud, name: str) -> None:
    """Snapshot ``name`` and a newer one of the same disk, into which its deletion folds."""
    make_snapshot(c, name)
    write_disk(c)
    make_snapshot(c, f"{name}-child")


def delete_snapshot(c: Cloud, name: str) -> None:
    c.compute.snapshots.begin_delete(GROUP, name).result()
    c.verified.discard(name)


def make_empty_disk(c: Cloud, name: str) -> None:
    body = {
        "location": "eastus",
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1},
    }
    c.compute.disks.begin_create_or_update(GROUP, name, body).result()


def delete_disk(c: Cloud, name: str) -> None:
    c.compute.disks.begin_delete(GROUP, name).result()


def make_group(c: Cloud, name: str) -> None:
    c.groups.resource_groups.create_or_update(name, {"location": "eastus"})


def delete_group(c: Cloud, name: str) -> None:
    c.groups.resource_groups.begin_delete(name).result()


def nothing(c: Cloud, name: str) -> None:
    return None


OPERATIONS: dict[str, tuple[Step, Step]] = {  # (what makes the instance, the operation)
    "snapshot creation": (write_disk, make_snapshot),  # a seal of what changed, each time
    "snapshot deletion": (snapshot_with_a_child, delete_snapshot),  # and its fold
    "disk deletion": (make_empty_disk, delete_disk),
    "group creation": (nothing, make_group),
    "group deletion": (make_group, delete_group),
}
NAMES = itertools.count()


def counted_writes(c: Cloud, prepare: Step, operation: Step) -> list[str]:
    """The writing statements a clean run of the operation makes, in order, with the clean-up
    it leaves to the background just after: those of the third run that the second made too
    (the first of a kind may do more — a disk's first snapshot — and the region's upkeep may
    write meanwhile, retrying a fold an earlier step postponed)."""
    runs: list[list[str]] = []
    for _ in range(3):
        name = f"clean-{next(NAMES)}"
        prepare(c, name)
        seen: list[str] = []
        c.faults.watch = lambda url, sql, _, seen=seen: (
            seen.append(signature(sql)) if writes(sql) else None
        )
        try:
            operation(c, name)
            time.sleep(TAIL)
        finally:
            c.faults.watch = None
        runs.append(seen)
    return [s for n, s in enumerate(runs[2]) if runs[1].count(s) > runs[2][:n].count(s)]


@pytest.mark.parametrize("what", list(OPERATIONS))
def test_each_write_of_an_operation_failing_leaves_nothing_stuck_or_contradictory(
    cloud: Cloud, what: str
) -> None:
    prepare, operation = OPERATIONS[what]
    steps = counted_writes(cloud, prepare, operation)
    assert steps, f"{what} wrote nothing"
    for n, statement in enumerate(steps):
        name = f"{what.split()[0]}-{next(NAMES)}"
        prepare(cloud, name)
        # the statement by its text and how many like it came before: the region's background
        # work (a seal) and the front door's index write race, so an ordinal over all of them
        # would not name the same statement twice
        before = steps[:n].count(statement)
        seen = itertools.count()
        failing: list[str] = []

        def nth(
            sql: str,
            _: object,
            before: int = before,
            seen: Iterator[int] = seen,
            failing: list[str] = failing,
            statement: str = statement,
        ) -> bool:
            hit = writes(sql) and signature(sql) == statement and next(seen) == before
            if hit:
                failing.append(signature(sql))
            return hit

        cloud.faults.failed = 0
        cloud.faults.arm(nth, message=FailingStatements.IO_ERROR)
        told = "success"
        try:
            operation(cloud, name)
        except HttpResponseError as exc:
            told = exc.error.code if exc.error else f"{exc.status_code} {exc.message}"
        where = f"{what}, write {n} ({statement}), told {told}"
        deadline = time.monotonic() + 10 * TAIL
        while not cloud.faults.failed and time.monotonic() < deadline:
            time.sleep(0.02)
        cloud.faults.arm(lambda sql, _: False, times=0)
        assert cloud.faults.failed == 1, f"{where}: the fault never fired"
        assert failing == [statement], f"{where}: {failing} failed instead"  # not a bystander
        assert told == "success" or told in NAMED, where
        settled(cloud.region_db, cloud.subscription, where)
        agreeing(cloud, where, name)
        operation(cloud, name)  # a retry succeeds, whatever the failure left
        settled(cloud.region_db, cloud.subscription, where)
        agreeing(cloud, where, name)


def agreeing(c: Cloud, where: str, name: str) -> None:
    """The front door lists what the region holds, and GETs ``name`` as the region holds it
    (404 if it does not), a snapshot reading back its disk's data; a group ``name`` is listed
    if and only if it can be got."""
    with c.region_db.connect() as conn:
        held = {
            (r.rtype, r.name): r
            for r in records.all_records(conn, subscription=c.subscription)
            if r.resource_group == GROUP
        }
    listed = {
        ("disks", d.name): d.provisioning_state
        for d in c.compute.disks.list_by_resource_group(GROUP)
    }
    listed |= {
        ("snapshots", s.name): s.provisioning_state
        for s in c.compute.snapshots.list_by_resource_group(GROUP)
    }
    assert set(listed) == set(held), f"{where}: front door {sorted(listed)}, region {sorted(held)}"
    for rtype, operations in (("disks", c.compute.disks), ("snapshots", c.compute.snapshots)):
        if (rtype, name) not in held:
            with pytest.raises(ResourceNotFoundError):
                operations.get(GROUP, name)
            continue
        got = operations.get(GROUP, name)
        assert got.provisioning_state == listed[rtype, name], where
        assert got.provisioning_state == PROVISIONING[held[rtype, name].state], where
        if rtype == "snapshots" and got.provisioning_state == "Succeeded":
            assert read_snapshot(c, name) == c.expected[name], f"{where}: {name} differs"
            c.verified.add(name)
    listed_groups = {g.name for g in c.groups.resource_groups.list()}
    try:
        c.groups.resource_groups.get(name)
        assert name in listed_groups, f"{where}: group {name} got but not listed"
    except ResourceNotFoundError:
        assert name not in listed_groups, f"{where}: group {name} listed but not found"


def read_snapshot(c: Cloud, name: str) -> bytes:
    grant = {"access": "Read", "durationInSeconds": 600}
    sas = c.compute.snapshots.begin_grant_access(GROUP, name, grant).result().access_sas
    try:
        reply = requests.get(sas, headers={"x-ms-range": f"bytes=0-{len(DATA) - 1}"}, timeout=60)
        reply.raise_for_status()
        return reply.content
    finally:
        c.compute.snapshots.begin_revoke_access(GROUP, name).result()


def test_afterwards_every_snapshot_reads_back_and_the_cloud_passes_its_audit(
    cloud: Cloud,
) -> None:
    for name in cloud.verified:
        assert read_snapshot(cloud, name) == cloud.expected[name], name
    audit(cloud.doc, cloud.data_dir)
