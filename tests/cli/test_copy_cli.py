"""``snapferry snapshot copy`` and ``snapferry copy list|show`` as a user runs them: a copy to
another region that waits until it is done, a delta copy, the reports in JSON and as tables,
and clear refusals that change nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapferry.client import Client
from snapferry.client.errors import BadRequest
from snapferry.testing.cli import json_of, snapferry
from snapferry.testing.cloud import RunningCloud
from snapferry.testing.copies import cloud_running

pytestmark = pytest.mark.slow
MiB = 1024**2


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    with cloud_running(tmp_path_factory.mktemp("cloud")) as running:
        yield running


def image(path: Path, pieces: dict[int, bytes], size: int = 32 * MiB) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
        for offset, data in pieces.items():
            f.seek(offset)
            f.write(data)
    return path


def test_snapshot_copy_waits_and_copy_show_explains(
    cloud: RunningCloud, env: dict[str, str], group: str, tmp_path: Path, client: Client
) -> None:
    first = image(tmp_path / "a.img", {0: b"\x01" * (3 * MiB), 20 * MiB: b"\x02" * 4096})
    assert snapferry(cloud, env, f"disk import -g {group} -n data --file {first}").returncode == 0
    assert snapferry(cloud, env, f"snapshot create -g {group} -n mon --source data").returncode == 0
    mon = client.snapshots.show(group, "mon")["id"]
    copied = json_of(
        snapferry(
            cloud,
            env,
            f"snapshot copy -g {group} -n mon-west --source {mon} -l westus --wait -o json",
        )
    )
    props = copied["properties"]
    assert props["completionPercent"] == 100 and props["snapshotAccessState"] == "Available"
    assert props["creationData"]["createOption"] == "CopyStart"
    report = json_of(snapferry(cloud, env, f"copy show {copied['id']} -o json"))
    assert report["state"] == "Succeeded" and report["baseSnapshot"] is None
    assert report["bytesTotal"] == 3 * MiB + 4096 == report["bytesCopied"]
    assert report["region"] == "westus" and report["attempts"] == 1
    # a name in the group works as the source too; without --wait it answers at once
    table = snapferry(cloud, env, f"snapshot copy -g {group} -n mon-copy --source mon -l centralus")
    assert table.returncode == 0 and "CopyStart" in table.stdout
    listed = json_of(snapferry(cloud, env, "copy list -o json"))["value"]
    assert {r["target"].rsplit("/", 1)[1] for r in listed} >= {"mon-west", "mon-copy"}
    shown = snapferry(cloud, env, f"copy show {copied['id']}")
    assert shown.returncode == 0 and "Succeeded" in shown.stdout and "westus" in shown.stdout
    rows = snapferry(cloud, env, "copy list")
    assert rows.returncode == 0 and "mon-west" in rows.stdout
    # what happened, in order, as the guide's words and as JSON lines
    told = snapferry(cloud, env, f"copy events {copied['id']}")
    assert told.returncode == 0, told.stderr
    lines = told.stdout.splitlines()
    assert [line.split()[1] for line in (lines[0], lines[1], lines[2], lines[-1])] == [
        "accepted",
        "started",
        "planned",
        "succeeded",
    ]
    target_key = copied["id"].lower()
    assert f"completion percent for the copy destination {target_key} with copy id" in told.stdout
    assert f"completed with Succeeded for copy destination {target_key}" in lines[-1]
    as_json = snapferry(cloud, env, f"copy events -g {group} mon-west -o json --follow")
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [e["kind"] for e in events] == [line.split()[1] for line in lines]
    assert events[-1]["details"]["bytesPlanned"] == 3 * MiB + 4096
    assert all(e["region"] == "westus" and e["copyId"] == events[0]["copyId"] for e in events)
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    for event in events:
        assert "sig=" not in json.dumps(event) and "se=" not in event["message"]
    found, since, unreachable = client.copy_events(copied["id"])
    assert [e["id"] for e in found] == [e["id"] for e in events] and unreachable == []
    assert client.copy_events(copied["id"], since)[0] == []  # nothing new since
    with pytest.raises(BadRequest, match="after must be the next of an earlier answer"):
        client.copy_events(copied["id"], "westus:x")
    told = snapferry(cloud, env, f"copy diagnose -g {group} mon-west")
    assert told.returncode == 0 and "succeeded" in told.stdout and "advice: nothing" in told.stdout
    doc = json_of(snapferry(cloud, env, f"copy diagnose {copied['id']} -o json"))
    assert doc["diagnosis"] == "succeeded" and doc["state"] == "Succeeded"
    assert doc["bytesTotal"] == 3 * MiB + 4096 and doc["advice"] == "nothing to do."
    waited = json_of(snapferry(cloud, env, f"copy wait -g {group} mon-west -o json"))
    assert waited["state"] == "Succeeded" and waited["target"] == copied["id"]
    nothing = snapferry(cloud, env, f"copy events {mon}")
    assert nothing.returncode != 0 and "no copy events" in nothing.stderr
    exported = tmp_path / "west.img"
    out = snapferry(cloud, env, f"snapshot export -g {group} -n mon-west --file {exported}")
    assert out.returncode == 0, out.stderr
    assert (
        hashlib.sha256(exported.read_bytes()).digest()
        == hashlib.sha256(first.read_bytes()).digest()
    )


def test_copy_refusals_are_one_line_and_create_nothing(
    cloud: RunningCloud, env: dict[str, str], group: str, client: Client
) -> None:
    missing = client.snapshots.id(group, "nope")
    proc = snapferry(cloud, env, f"snapshot copy -g {group} -n x --source {missing} -l westus")
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")
    assert "was not found" in proc.stderr
    proc = snapferry(cloud, env, f"snapshot copy -g {group} -n x --source nope -l westus")
    assert proc.returncode == 2 and "no snapshot named 'nope'" in proc.stderr
    proc = snapferry(cloud, env, f"copy show {missing} -o json")
    assert proc.returncode == 2 and "ResourceNotFound" in proc.stdout
    assert list(client.snapshots.list(group)) == []
