"""``snapferry snapshot copy`` and ``snapferry copy list|show`` as a user runs them: a copy to
another region that waits until it is done, a delta copy, the reports in JSON and as tables,
and clear refusals that change nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapferry.client import Client
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
