"""RegionService: the ARM disks and snapshots of one region over its Engine.

Thread-safe. Every change checks its request completely, then records the resource and an
operation in one transaction and answers; creations and deletions run on a worker pool, updates
and access grants finish before the call returns. At most one change runs per resource.
CopyStart targets are made by ``copies`` (``control.copies.CopyTargets``): their operation ends
at once, and the region's copy worker moves their data as a durable job.

Crash semantics (``recover``, run at start): a creation the crash interrupted is reported
Failed and its half-made engine disk or snapshot is deleted; an interrupted deletion is
finished (a copy target's job goes with it). An operation is therefore never left InProgress
across a restart. Copies are not recovered here: their jobs resume under a new lease.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from snapferry.control import render
from snapferry.control.access import Signer, sas_path
from snapferry.control.copies import CopyTargets, is_copy_start
from snapferry.control.creation import (
    Region,
    check_sku,
    gib_to_bytes,
    plan_disk,
    plan_snapshot,
    settable,
)
from snapferry.control.errors import (
    AnotherOperationInProgress,
    InvalidParameter,
    LocationNotAvailable,
    OperationNotAllowed,
    OperationNotFound,
    PropertyChangeNotAllowed,
    ResourceNotFound,
)
from snapferry.control.ids import ResourceId, normalize_location
from snapferry.control.models import BODY_MODELS, DiskUpdate, GrantAccess, SnapshotUpdate, parse
from snapferry.control.recovery import Recovery, error_of
from snapferry.engine import Engine
from snapferry.errors import NotFound, StorageFault
from snapferry.faults import storage_fault
from snapferry.ids import new_id
from snapferry.meta import records
from snapferry.meta.records import Operation, Record
from snapferry.replication.worker import CopyWorker

log = logging.getLogger(__name__)


def request_digest(body: Any) -> str:
    """A digest of a validated PUT body: a retried PUT joins a running creation only if it asks
    for exactly the same thing."""
    canonical = json.dumps(body.model_dump(by_alias=True, exclude_none=True), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


MAX_FAMILY_SAS = 5
"""At most this many snapshots of one family hold a SAS at a time (as in Azure)."""


class RegionService(Recovery):
    """The ARM resources of one region. ``close`` waits for running operations."""

    def __init__(
        self,
        region: Region,
        engine: Engine,
        signer: Signer,
        *,
        data_url: str = "",
        clock: Callable[[], float] = time.time,
        workers: int = 4,
        operation_delay: float = 0.0,
        copier: CopyWorker | None = None,
        max_active_copies: int = 100,
        copy_stall_seconds: float = 600.0,
    ) -> None:
        """``operation_delay`` (fault injection for tests) holds every background operation
        that long before it starts, so a test can kill the region while operations are in
        flight."""
        self.region = region
        self.engine = engine
        self.signer = signer
        self.data_url = data_url.rstrip("/")
        self.clock = clock
        self.operation_delay = operation_delay
        self.copies = CopyTargets(
            region,
            engine,
            copier,
            clock=clock,
            max_active=max_active_copies,
            stall_seconds=copy_stall_seconds,
        )
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"arm-{region.name}")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # --- reads ---------------------------------------------------------------------------------
    def _lookup(self, key: str) -> Record | None:
        with self.engine.db.connect() as conn:
            return records.get(conn, key)

    def _existing(self, rid: ResourceId) -> Record:
        rec = self._lookup(rid.key)
        if rec is None:
            kind = "disk" if rid.rtype == "disks" else "snapshot"
            raise ResourceNotFound(
                f"{kind} {rid.name!r} was not found in resource group {rid.resource_group!r}",
                target=rid.name,
            )
        return rec

    def _render(self, rec: Record) -> dict[str, Any]:
        return render.resource(rec, self.copies.job_of(rec))

    def get(self, rid: ResourceId) -> dict[str, Any]:
        """The resource's ARM JSON, or ResourceNotFound."""
        return self._render(self._existing(rid))

    def list(
        self, subscription: str, rtype: str, group: str | None, after: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a subscription's (or group's) disks or snapshots, and the key to pass as
        ``after`` for the next page (None on the last)."""
        size = self.region.page_size
        with self.engine.db.connect() as conn:
            found = records.page(conn, subscription, rtype, group, after, size + 1)
        more = len(found) > size
        found = found[:size]
        return [self._render(r) for r in found], (found[-1].key if more else None)

    def operation(self, subscription: str, op_id: str) -> Operation:
        """An operation of the subscription, or OperationNotFound."""
        with self.engine.db.connect() as conn:
            op = records.get_operation(conn, op_id) if len(op_id) <= 64 else None
        if op is None or op.subscription != subscription.lower():
            raise OperationNotFound(f"operation {op_id[:64]!r} was not found")
        return op

    # --- changes -------------------------------------------------------------------------------
    def put(self, rid: ResourceId, raw: object) -> tuple[dict[str, Any], Operation]:
        """Create the resource, or update an existing one. A creation makes its engine disk or
        snapshot before answering (so a snapshot's point in time is the request); a snapshot's
        pages are then sealed in the background. StorageFull refuses a creation (nothing
        recorded) while the region is down to its space reserve; updates go on."""
        put_model = BODY_MODELS[rid.rtype][0]
        body = parse(put_model, raw)
        location = normalize_location(body.location)  # type: ignore[attr-defined]
        if location != self.region.name:
            raise LocationNotAvailable(
                f"location {body.location!r} is not served here (region {self.region.name})",  # type: ignore[attr-defined]
                target="location",
            )
        copy_start = rid.rtype == "snapshots" and is_copy_start(body)  # type: ignore[arg-type]
        source = None
        existing = self._lookup(rid.key)
        if copy_start and (existing is None or existing.state == "failed"):
            source = self.copies.locate(body.properties.creation_data.source_resource_id)  # type: ignore[attr-defined]
        with self._lock:
            current = self._lookup(rid.key)
            if current is not None and current.state != "failed":
                return self._update_by_put(current, body)
            self.engine.reserve.check()  # new data needs room the reserve does not give
            if current is not None:
                self._forget_failed(current)  # PUT again: a new creation takes its place
            if source is not None:
                return self.copies.create(rid, body, source, request_digest(body))  # type: ignore[arg-type]
            if rid.rtype == "disks":
                plan = plan_disk(self.region, body, self.copies.usable)  # type: ignore[arg-type]
            else:
                plan = plan_snapshot(self.region, rid, body, self.copies.usable)  # type: ignore[arg-type]
            rec = Record.new(
                rid,
                self.region.name,
                None,
                "creating",
                {**plan.body, "request": request_digest(body)},
                self.clock(),
            )
            op = self._record_start(rec, "create")
        # The name is reserved (state creating): the engine step runs outside the lock, so a
        # slow engine (a fold holding its lock) never stalls the region's other changes.
        try:
            made = plan.make(self.engine)
        except Exception as exc:
            self._fail(op, exc, lambda conn: records.drop(conn, rec.key))
            raise
        made_rec = replace(rec, engine_id=made.engine_id).with_props(**made.props)
        if made.finish is None:
            made_rec = replace(made_rec, state="succeeded")
        try:
            with self.engine.db.begin() as conn:
                records.put(conn, made_rec)
                if made.finish is None:
                    records.finish_operation(conn, op.id, "Succeeded", self.clock())
        except Exception as exc:  # the database refused: nothing is left half made or running
            try:
                self._delete_engine_object(made_rec)
            except Exception:
                log.warning("left %s for the region's upkeep to drop", made.engine_id)
            self._fail(op, exc, lambda conn: records.drop(conn, rec.key))
            raise
        rec = made_rec
        if made.finish is not None:
            self._pool.submit(self._finish_creation, rec, made.finish, op)
        return render.resource(rec), op

    def _update_by_put(self, current: Record, body: Any) -> tuple[dict[str, Any], Operation]:
        asked = body.properties.creation_data
        if current.state == "creating" and current.body.get("request") == request_digest(body):
            # A client retrying its PUT (a timeout, a dropped connection) gets the creation
            # that is already running, not a conflict.
            with self.engine.db.connect() as conn:
                running = records.running_operation_of(conn, current.key)
            if running is not None:
                return render.resource(current), running
        self._check_idle(current)
        if not self._same_creation(current, asked):
            raise PropertyChangeNotAllowed(
                "creationData cannot change once a resource exists", target="creationData"
            )
        retried = self.copies.retry(current)
        if retried is not None:
            return self._render(current), retried
        if current.rtype == "disks" and (body.zones or None) != current.body.get("zones"):
            raise PropertyChangeNotAllowed("a disk's zones cannot change", target="zones")
        incremental = getattr(body.properties, "incremental", None)
        if incremental is not None and incremental != current.props.get("incremental"):
            raise PropertyChangeNotAllowed(
                "a snapshot cannot change between incremental and full",
                target="properties.incremental",
            )
        update_model = DiskUpdate if current.rtype == "disks" else SnapshotUpdate
        dumped = body.model_dump(by_alias=True, exclude_none=True)
        properties = dumped["properties"]
        properties.pop("creationData")
        properties.pop("incremental", None)
        patch = update_model.model_validate(
            {"tags": body.tags or {}, "sku": dumped.get("sku"), "properties": properties},
            by_alias=True,
        )
        return self._apply_update(current, patch)

    @staticmethod
    def _same_creation(current: Record, asked: Any) -> bool:
        """Whether a re-PUT's creationData asks for what the resource was made with: every
        field it sends equal to the one kept (ids and options compared without case)."""
        had = current.props["creationData"]
        for key, value in asked.model_dump(by_alias=True, exclude_none=True).items():
            kept = had.get(key)
            if isinstance(value, str) and isinstance(kept, str):
                if value.strip("/").lower() != kept.strip("/").lower():
                    return False
            elif value != kept:
                return False
        return True

    def patch(self, rid: ResourceId, raw: object) -> tuple[dict[str, Any], Operation]:
        """Change tags, sku or writable properties; a disk's size grows only."""
        patch = parse(BODY_MODELS[rid.rtype][1], raw)
        with self._lock:
            current = self._existing(rid)
            self._check_idle(current)
            return self._apply_update(current, patch)

    def _apply_update(self, rec: Record, patch: Any) -> tuple[dict[str, Any], Operation]:
        new = rec
        if patch.tags is not None:
            new = new.with_body(tags=patch.tags)
        if patch.sku is not None and patch.sku.name != rec.body.get("sku"):
            if rec.rtype == "snapshots" and rec.props.get("incremental"):
                raise OperationNotAllowed(
                    "the sku of an incremental snapshot cannot change", target="sku.name"
                )
            check_sku(self.region, patch.sku.name, rec.body.get("zones"))
            new = new.with_body(sku=patch.sku.name)
        if patch.properties is not None:
            new = new.with_props(**settable(patch.properties))
            gb = patch.properties.disk_size_gb
            if gb is not None:
                new = self._resize(new, gb)
        op = Operation(
            new_id(),
            rec.subscription,
            rec.key,
            "update",
            "Succeeded",
            None,
            None,
            self.clock(),
            self.clock(),
        )
        with self.engine.db.begin() as conn:
            records.put(conn, new)
            records.add_operation(conn, op)
        return self._render(new), op

    def _resize(self, rec: Record, gb: int) -> Record:
        if gb == rec.props["diskSizeGB"]:
            return rec  # what a GET shows (rounded up to whole GiB) sent back: no change
        size = gib_to_bytes(gb)
        if rec.body.get("restingState") == "ReadyToUpload":
            raise OperationNotAllowed(
                "an upload disk keeps the size it was created with until its upload ends",
                target="properties.diskSizeGB",
            )
        if rec.rtype == "snapshots":
            raise OperationNotAllowed("a snapshot's size cannot change", target="diskSizeGB")
        if size < rec.props["diskSizeBytes"]:
            raise InvalidParameter(
                f"a disk can only grow: {gb} GiB is smaller than its {rec.props['diskSizeBytes']} "
                "bytes",
                target="properties.diskSizeGB",
            )
        assert rec.engine_id is not None
        self.engine.resize_disk(rec.engine_id, size)
        return rec.with_props(diskSizeBytes=size, diskSizeGB=gb)

    def delete(self, rid: ResourceId) -> Operation | None:
        """Delete in the background; None if there is nothing to delete. A disk's snapshots
        stay."""
        with self._lock:
            rec = self._lookup(rid.key)
            if rec is None:
                return None
            self._check_idle(rec)
            if render.disk_state(rec) in ("ActiveSAS", "ActiveUpload"):
                raise OperationNotAllowed(
                    f"{rec.id} has an active shared access signature; call endGetAccess first"
                )
            op = self._record_start(replace(rec, state="deleting"), "delete")
        self._pool.submit(self._delete, rec, op)
        return op

    def location_of(self, rid: ResourceId) -> str | None:
        """This region's name if it holds the resource."""
        return self.region.name if self._lookup(rid.key) is not None else None

    # --- access --------------------------------------------------------------------------------
    def grant_access(self, rid: ResourceId, raw: object) -> Operation:
        """Grant a SAS for the resource's data (see ``control.access``)."""
        grant = parse(GrantAccess, raw)
        with self._lock:
            rec = self._existing(rid)
            self._check_idle(rec)
            state = render.disk_state(rec)
            if grant.access == "None":
                raise InvalidParameter("access must be Read or Write", target="access")
            self.copies.usable(rec.key)  # not a failed creation, nor a copy short of 100 %
            if rec.rtype == "snapshots":
                if grant.access == "Write":
                    raise InvalidParameter("snapshots are read-only", target="access")
                self._check_family_limit(rec)
            elif grant.access == "Read" and state in ("ReadyToUpload", "ActiveUpload"):
                raise OperationNotAllowed(f"disk {rec.id} is waiting for its upload")
            now = self.clock()
            # A new grant replaces the previous SAS: the state shown is always the live SAS's.
            grant_id = new_id()
            expires = now + grant.duration_in_seconds
            perms = "r" if grant.access == "Read" else "rw"
            access = {"access": grant.access, "expiresAt": expires, "grant": grant_id}
            sas = self.signer.sign(rec.unique_id, perms, expires, grant_id)
            assert rec.engine_id is not None
            url = f"{self.data_url}{sas_path(self.region.name, rec.engine_id)}?{sas}"
            new = rec.with_body(access=access)
            op = Operation(
                new_id(),
                rec.subscription,
                rec.key,
                "grant",
                "Succeeded",
                None,
                {"accessSAS": url},
                now,
                now,
            )
            with self.engine.db.begin() as conn:
                records.put(conn, new)
                records.add_operation(conn, op)
        return op

    def revoke_access(self, rid: ResourceId) -> Operation:
        """Revoke every SAS of the resource at once; an Upload disk becomes Unattached."""
        with self._lock:
            rec = self._existing(rid)
            self._check_idle(rec)
            new = rec.with_body(access=None)
            access = rec.body.get("access") or {}
            if access.get("access") == "Write" and rec.body.get("restingState") == "ReadyToUpload":
                new = new.with_body(restingState="Unattached")
            now = self.clock()
            op = Operation(
                new_id(), rec.subscription, rec.key, "revoke", "Succeeded", None, None, now, now
            )
            with self.engine.db.begin() as conn:
                records.put(conn, new)
                records.add_operation(conn, op)
        return op

    def _check_family_limit(self, rec: Record) -> None:
        family = rec.props.get("incrementalSnapshotFamilyId")
        if family is None or render.disk_state(rec) == "ActiveSAS":
            return
        # an incremental snapshot is in its disk's subscription: so is its whole family
        with self.engine.db.connect() as conn:
            mine = records.all_records(conn, subscription=rec.subscription, rtype="snapshots")
            active = [
                r
                for r in mine
                if r.props.get("incrementalSnapshotFamilyId") == family
                and render.disk_state(r) == "ActiveSAS"
            ]
        if len(active) >= MAX_FAMILY_SAS:
            raise OperationNotAllowed(
                f"{MAX_FAMILY_SAS} snapshots of this family already have an active shared access "
                "signature; call endGetAccess on one first"
            )

    # --- operations --------------------------------------------------------------------------
    @staticmethod
    def _check_idle(rec: Record) -> None:
        if rec.state in records.BUSY_STATES:
            raise AnotherOperationInProgress(
                f"{rec.id} is {render.PROVISIONING[rec.state].lower()}; retry when it is done"
            )

    def _record_start(self, rec: Record, kind: str) -> Operation:
        op = Operation(
            new_id(), rec.subscription, rec.key, kind, "InProgress", None, None, self.clock(), None
        )
        with self.engine.db.begin() as conn:
            records.put(conn, rec)
            records.add_operation(conn, op)
        return op

    def _forget_failed(self, rec: Record) -> None:
        """Drop a Failed resource's record; its engine object goes now or with the upkeep."""
        with self.engine.db.begin() as conn:
            records.drop(conn, rec.key)
        try:
            self._delete_engine_object(rec)
        except Exception:
            log.info("left %s of failed %s for the region's upkeep", rec.engine_id, rec.id)

    def _finish_creation(
        self, rec: Record, finish: Callable[[Engine], None], op: Operation
    ) -> None:
        time.sleep(self.operation_delay)
        try:
            finish(self.engine)
        except Exception as exc:
            try:
                self._delete_engine_object(rec)
            except Exception:
                # its engine object stays (a seal the storage refused): the resource shows
                # Failed until it is deleted or PUT again; the upkeep drops the object then
                self._fail(op, exc, lambda conn: records.put(conn, replace(rec, state="failed")))
                return
            self._fail(op, exc, lambda conn: records.drop(conn, rec.key))
            return
        self._settle(lambda conn: records.put(conn, replace(rec, state="succeeded")), op)

    def _delete(self, rec: Record, op: Operation) -> None:
        time.sleep(self.operation_delay)
        try:
            self._delete_engine_object(rec)
        except Exception as exc:
            if rec.state != "failed":
                self._fail(op, exc, lambda conn: records.put(conn, rec))
                return
            # what a failed creation left: unnamed now, the upkeep drops it once it can
            log.info("left %s of failed %s for the region's upkeep", rec.engine_id, rec.id)

        def forget(conn: Any) -> None:
            records.drop(conn, rec.key)
            self.copies.forget(conn, rec.key)

        self._settle(forget, op)

    def _settle(
        self,
        change: Callable[[Any], None],
        op: Operation,
        tries: int = 5,
        error: dict[str, str] | None = None,
    ) -> None:
        """Commit an operation's outcome (Failed with ``error``, else Succeeded), retrying a
        database that is briefly busy or full; if it never commits, the operation stays
        InProgress until ``recover`` settles it."""
        status = "Succeeded" if error is None else "Failed"
        for attempt in range(tries):
            try:
                with self.engine.db.begin() as conn:
                    change(conn)
                    records.finish_operation(conn, op.id, status, self.clock(), error=error)
                return
            except (SQLAlchemyError, StorageFault, OSError) as exc:
                fault = storage_fault(exc)  # not the error's text: it holds the statement
                why = fault.code if fault is not None else type(exc).__name__
                log.warning(
                    "operation %s: commit failed (try %d of %d): %s", op.id, attempt + 1, tries, why
                )
                time.sleep(0.2 * 2**attempt)
        log.error("operation %s: outcome not recorded; the next start settles it", op.id)

    def _delete_engine_object(self, rec: Record) -> None:
        if rec.engine_id is None:
            return
        try:
            if rec.rtype == "disks":
                self.engine.delete_disk(rec.engine_id)
            else:
                self.engine.delete_snapshot(rec.engine_id)
        except NotFound:
            pass

    def _fail(self, op: Operation, exc: Exception, undo: Callable[[Any], None]) -> None:
        """Record that the operation failed (with exc named: its storage fault, its code, or
        an internal error), undoing what ``undo`` undoes in the same commit."""
        self._settle(undo, op, error=error_of(exc))
