"""``snapferry snapshot copy`` (CopyStart to any region), ``snapferry copy list|show`` (where
copies between regions stand) and ``snapferry copy events`` (what happened to one), over a
running cloud.

``snapshot copy`` answers as soon as the target exists (0 %, Pending); with ``--wait`` it
follows the copy with a progress bar (percent, rate, time left) on a terminal, or a line every
30 s otherwise, until it ends — exit 0 when it reached 100 %, 4 when it failed (with its
cause). ``copy show`` and ``copy list`` print the copy's report; with ``--output json`` its
fields are ``state`` (Queued, Copying, Succeeded, Failed), ``completionPercent``,
``bytesTotal``, ``bytesCopied``, ``bytesTransferred``, ``startedAt``, ``lastProgressAt``,
``endedAt``, ``lastError``, ``attempts``, ``source``, ``baseSnapshot``, ``region``.
``copy events`` prints one line per event (``--output json``: one JSON object per line, with
``id``, ``at``, ``kind``, ``message``, ``copyId``, ``details``, ``region``); ``--follow`` keeps
printing new ones until the copy succeeds, fails or its target is deleted. ``copy diagnose``
says what a copy is doing and what to do (``--output json``: the report's fields and
``diagnosis``, ``summary``, ``advice``, ``rateBytesPerSecond``, ``etaSeconds``); it exits 1 for
a stalled or failed copy. ``copy wait`` follows a copy as ``--wait`` does; with ``--timeout``
both give up at that time, and both exit 4 with diagnose's words when the copy failed or had not
ended.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

import click
from rich.console import RenderableType

from snapferry.cli import output as out
from snapferry.cli import views
from snapferry.cli.remote import GROUP, NAME, TAGS, Remote, remote_command
from snapferry.cli.resources import named_or_by_id
from snapferry.client import Client, OperationFailed, ResourceMissing, copy_start_body
from snapferry.client.diagnose import Diagnosis, diagnose

TIMEOUT = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="With waiting: give up (exit 4, saying why) if the copy has not ended by then.",
)
TARGET_GROUP = click.option(
    "--resource-group",
    "-g",
    "group",
    default=None,
    help="TARGET is the name of a snapshot in this group (else its full resource id).",
)
POLL_SECONDS = 0.5
LINE_EVERY = 5.0
FOLLOW_SECONDS = 1.0
ENDS = ("succeeded", "failed", "deleted")
"""Event kinds after which a copy logs nothing more (until a retry queues it again)."""


@click.command("copy")
@remote_command()
@GROUP
@NAME
@click.option(
    "--source",
    required=True,
    metavar="SNAPSHOT",
    help="The snapshot to copy: its full resource id (any region), or a name in the group.",
)
@click.option("--location", "-l", required=True, help="The region to copy it to.")
@click.option("--full", is_flag=True, help="Make a full (self-contained) snapshot there.")
@click.option("--enhanced", is_flag=True, help="Copy with more parallel transfers.")
@click.option("--wait", is_flag=True, help="Follow the copy until it ends.")
@TIMEOUT
@TAGS
def snapshot_copy(
    remote: Remote,
    group: str,
    name: str,
    source: str,
    location: str,
    full: bool,
    enhanced: bool,
    wait: bool,
    timeout: float | None,
    tags: dict[str, str] | None,
) -> None:
    """Copy a snapshot to a region (CopyStart): only the pages changed since the newest
    snapshot of its family already there travel."""
    with remote.client(group, location) as client:
        found = named_or_by_id(client, group, source, (client.snapshots,))
        body = copy_start_body(
            location=location, source_id=found["id"], full=full, enhanced=enhanced, tags=tags
        )
        target = client.snapshots.create(group, name, body)
        if wait:
            ended(
                client, follow(client, str(target["id"]), tty=sys.stderr.isatty(), timeout=timeout)
            )
            target = client.snapshots.show(group, name)
    out.emit(remote.output, target, lambda: views.resource(target))


def ended(client: Client, report: dict[str, Any]) -> dict[str, Any]:
    """report, if its copy Succeeded; else OperationFailed saying why (diagnose's words)."""
    if report["state"] == "Succeeded":
        return report
    events, _, _ = client.copy_events(str(report["target"]))
    found = diagnose(report, events, time.time())
    where = f"the copy to {report.get('region', 'its region')}"
    if report["state"] == "Failed":
        error = report.get("lastError") or {}
        raise OperationFailed(
            f"{where} failed: {error.get('message', 'unknown cause')}; {found.advice}",
            code=str(error.get("code", "CopyFailed")),
        )
    raise OperationFailed(
        f"{where} did not finish in time: {found.summary}; {found.advice}", code=found.code
    )


def follow(
    client: Client, target: str, *, tty: bool, timeout: float | None = None
) -> dict[str, Any]:
    """Poll the copy of target until it ends, or ``timeout`` seconds pass; its last report.
    On a terminal a bar shows it; otherwise a line tells each change of its state or percent,
    at most every ``LINE_EVERY`` seconds, and always the last."""
    deadline = None if timeout is None else time.monotonic() + timeout
    said, said_at = "", 0.0
    with out.progress_bar("copying", tty, percent=True) as progress:
        while True:
            (report,) = _report(client, target)
            total = int(report["bytesTotal"])
            done = int(report["bytesCopied"])
            over = report["state"] in ("Succeeded", "Failed")
            late = deadline is not None and time.monotonic() >= deadline
            if progress is not None and total:
                progress(done, total)
            elif progress is None:
                line = f"copy {report['state'].lower()}: {report['completionPercent']} %"
                due = over or late or time.monotonic() - said_at >= LINE_EVERY
                if line != said and due:
                    click.echo(line, err=True)
                    said, said_at = line, time.monotonic()
            if over or late:
                return report
            time.sleep(POLL_SECONDS)


def _target_id(client: Client, group: str | None, target: str) -> str:
    """TARGET as a resource id: a snapshot's name in group, or already an id."""
    return client.snapshots.id(group, target) if group else target


def _report(client: Client, target: str) -> list[dict[str, Any]]:
    found = client.copies(target)
    if not found:
        raise ResourceMissing(
            f"no copy into {target} (it was deleted, or is not a copy)", code="ResourceNotFound"
        )
    return found[:1]


@click.group("copy")
def copy_command() -> None:
    """Copies of snapshots between regions: where each stands."""


@copy_command.command("list")
@remote_command()
def copy_list(remote: Remote) -> None:
    """List the subscription's copies into every reachable region."""
    with remote.client() as client:
        found, unreachable = client.copies_with_gaps()
    if unreachable:
        click.echo(
            f"warning: region(s) {', '.join(unreachable)} did not answer; their copies are "
            "not listed",
            err=True,
        )
    doc = {"value": found, "unreachable": unreachable}
    out.emit(remote.output, doc, lambda: [listing(found)])


@copy_command.command("show")
@remote_command()
@click.argument("target_id")
def copy_show(remote: Remote, target_id: str) -> None:
    """Show the copy whose target snapshot has TARGET_ID (a full resource id)."""
    with remote.client() as client:
        (report,) = _report(client, target_id)
    out.emit(remote.output, report, lambda: [details(report)])


@copy_command.command("wait")
@remote_command()
@click.argument("target")
@TARGET_GROUP
@TIMEOUT
def copy_wait(remote: Remote, target: str, group: str | None, timeout: float | None) -> None:
    """Follow the copy into the snapshot TARGET until it ends (a progress bar on a terminal, a
    line every 30 s otherwise); print its report. Exit 4, with what diagnose says, if it failed
    or had not finished within --timeout."""
    with remote.client() as client:
        target_id = _target_id(client, group, target)
        report = ended(client, follow(client, target_id, tty=sys.stderr.isatty(), timeout=timeout))
    out.emit(remote.output, report, lambda: [details(report)])


@copy_command.command("events")
@remote_command()
@click.argument("target")
@TARGET_GROUP
@click.option("--follow", is_flag=True, help="Keep printing new events until the copy ends.")
def copy_events(remote: Remote, target: str, group: str | None, follow: bool) -> None:
    """Print what happened to the copy into the snapshot TARGET, oldest first: accepted,
    started, planned, progress, retries, takeovers, the end."""
    after = None
    seen = False
    with remote.client() as client:
        target_id = _target_id(client, group, target)
        while True:
            found, after, unreachable = client.copy_events(target_id, after)
            for event in found:
                seen = True
                if remote.output == "json":
                    sys.stdout.write(json.dumps(event, sort_keys=True) + "\n")
                else:
                    click.echo(event_line(event))
            sys.stdout.flush()
            ended = any(event["kind"] in ENDS for event in found)
            if not follow or ended:
                break
            time.sleep(FOLLOW_SECONDS)
    if unreachable:
        click.echo(
            f"warning: region(s) {', '.join(unreachable)} did not answer; their events are missing",
            err=True,
        )
    if not seen and not unreachable:
        raise ResourceMissing(
            f"no copy events for {target_id} (not a copy, or its events were pruned)",
            code="ResourceNotFound",
        )


@copy_command.command("diagnose")
@remote_command()
@click.argument("target")
@TARGET_GROUP
def copy_diagnose(remote: Remote, target: str, group: str | None) -> None:
    """Say in plain words what the copy into the snapshot TARGET is doing and what to do:
    moving (rate, time left), queued, stalled (since when, why), succeeded or failed (the
    cause, and how to retry). Exit status 1 when it is stalled or failed."""
    with remote.client() as client:
        target_id = _target_id(client, group, target)
        (report,) = _report(client, target_id)
        found, _, _ = client.copy_events(target_id)
    found_diagnosis = diagnose(report, found, time.time())
    doc = {**report, **found_diagnosis.fields()}
    out.emit(remote.output, doc, lambda: [diagnosis_view(report, found_diagnosis)])
    if not found_diagnosis.healthy:
        raise SystemExit(1)


def diagnosis_view(report: Mapping[str, Any], found: Diagnosis) -> RenderableType:
    return "\n".join(
        [
            f"copy into {report['target']} ({report.get('region', '?')}): "
            f"{report['state']} — {found.code}",
            f"  {found.summary}",
            f"  from {report['source']}",
            f"advice: {found.advice}",
        ]
    )


def event_line(event: Mapping[str, Any]) -> str:
    """``2026-12-02T18:40:01.123Z  progress   <message>``"""
    at = datetime.datetime.fromtimestamp(float(event["at"]), tz=datetime.UTC)
    return f"{at.isoformat(timespec='milliseconds')[:-6]}Z  {event['kind']:<9}  {event['message']}"


def details(report: Mapping[str, Any]) -> RenderableType:
    error = report.get("lastError") or {}
    rows: Iterable[tuple[str, object]] = [
        ("target", report["target"]),
        ("region", report.get("region", "-")),
        ("state", report["state"]),
        ("completion", f"{report['completionPercent']} %"),
        ("bytes to copy", out.size(int(report["bytesTotal"]))),
        ("bytes copied", out.size(int(report["bytesCopied"]))),
        ("bytes on the wire", out.size(int(report["bytesTransferred"]))),
        ("source", report["source"]),
        ("base snapshot", report.get("baseSnapshot") or "- (first copy: all data)"),
        ("attempts", report["attempts"]),
        ("started", views.when(report.get("startedAt") or "-")),
        ("last progress", views.when(report.get("lastProgressAt") or "-")),
        ("ended", views.when(report.get("endedAt") or "-")),
        ("last error", f"{error['code']}: {error['message']}" if error else "-"),
    ]
    return out.kv_table(f"copy to {report.get('region', '')}", rows)


def listing(found: list[dict[str, Any]]) -> RenderableType:
    rows = [
        (
            str(r["target"]).rsplit("/", 1)[-1],
            views.group_of({"id": r["target"]}),
            r.get("region", ""),
            r["state"],
            f"{r['completionPercent']} %",
            out.size(int(r["bytesTotal"])),
            r["attempts"],
            (r.get("lastError") or {}).get("code", "-"),
        )
        for r in found
    ]
    columns = ("target", "resource group", "region", "state", "done", "to copy", "tries", "error")
    return out.grid_table(f"{len(found)} copies", columns, rows)
