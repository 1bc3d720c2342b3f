"""The resource CLI as a user runs it: real ``snapferry disk|snapshot|group|token`` processes
against one real cloud (``snapferry up`` in a child process, two regions, pages of two items).

Setup that is not under test (groups, disks to list) goes through ``snapferry.client``
in-process, which is faster than a process per step.
"""

from __future__ import annotations

import itertools
import json
import socket
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from snapferry.client import (
    API_VERSION,
    Client,
    ClientError,
    Cloud,
    OperationFailed,
    OperationTimeout,
    ResourceMissing,
    disk_body,
    resolve_cloud,
)
from snapferry.client.transport import Transport
from snapferry.testing.cli import json_of, snapferry
from snapferry.testing.cloud import RunningCloud

pytestmark = pytest.mark.slow

OTHER_SUBSCRIPTION = "0b5e2c1a-7f00-4d1e-9c3b-5a6d7e8f9a0b"
UPLOAD_BYTES = 20 * 1024**2 + 512  # the smallest upload: 20 MiB and a VHD footer


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    running = RunningCloud.start(tmp_path_factory.mktemp("cloud"), page_size=2)
    try:
        yield running
    finally:
        running.kill()


def dead_endpoint() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# --- resource groups ---------------------------------------------------------------------------
def test_group_create_list_and_delete_refused_while_not_empty(
    cloud: RunningCloud, env: dict[str, str], client: Client
) -> None:
    made = json_of(snapferry(cloud, env, "group create -g team -l westus -o json"))
    client.disks.create("team", "keep", disk_body(location="westus", size_gb=1))

    listed = json_of(snapferry(cloud, env, "group list -o json"))
    refused = snapferry(cloud, env, "group delete -g team --yes")
    client.disks.delete("team", "keep")
    deleted = json_of(snapferry(cloud, env, "group delete -g team -y -o json"))

    assert made["location"] == "westus"
    assert made["id"].endswith("/resourceGroups/team")
    assert "team" in {g["name"] for g in listed["value"]}
    assert refused.returncode == 2
    assert "still holds disks" in refused.stderr
    assert "(ResourceGroupNotEmpty)" in refused.stderr
    assert deleted == {"name": "team", "deleted": True}


def test_a_missing_group_is_not_created_and_the_error_says_how(
    cloud: RunningCloud, env: dict[str, str], client: Client
) -> None:
    proc = snapferry(cloud, env, "disk create -g nogroup -n d --size-gb 1")

    assert proc.returncode == 2
    assert proc.stderr == (
        "error: resource group nogroup does not exist: create it with "
        "`snapferry group create -g nogroup -l eastus` (ResourceGroupNotFound)\n"
    )
    with pytest.raises(ResourceMissing):
        client.show_group("nogroup")


# --- disks -------------------------------------------------------------------------------------
def test_disk_create_then_show_as_a_table(
    cloud: RunningCloud, env: dict[str, str], group: str
) -> None:
    disk = json_of(
        snapferry(
            cloud,
            env,
            f"disk create -g {group} -n data --size-gb 4 --zone 2 --sku Premium_LRS "
            "--tags env=dev --tags 'team=a b=c' -o json",
        )
    )
    shown = snapferry(cloud, env, f"disk show -g {group} -n data")

    assert disk["name"] == "data"
    assert disk["location"] == "eastus"  # the cloud's first region
    assert disk["zones"] == ["2"]
    assert disk["sku"]["name"] == "Premium_LRS"
    assert disk["tags"] == {"env": "dev", "team": "a", "b": "c"}
    assert disk["properties"]["diskSizeGB"] == 4
    assert disk["properties"]["provisioningState"] == "Succeeded"
    assert disk["properties"]["creationData"] == {"createOption": "Empty"}
    assert shown.returncode == 0, shown.stderr
    assert f"disk {group}/data" in shown.stdout
    assert "4 GiB" in shown.stdout
    assert "Premium_LRS" in shown.stdout
    assert shown.stderr == ""


def test_disk_list_follows_next_link_over_several_pages(
    cloud: RunningCloud, env: dict[str, str], client: Client, group: str
) -> None:
    names = [f"disk{i}" for i in range(5)]
    for name in names:
        client.disks.create(group, name, disk_body(location="eastus", size_gb=1))
    scope = f"/subscriptions/{client.cloud.subscription}/resourceGroups/{group}"
    first_page = requests.get(
        f"{cloud.endpoint}{scope}/providers/Microsoft.Compute/disks",
        params={"api-version": API_VERSION},
        headers={"Authorization": f"Bearer {cloud.cloud['token']}"},
        timeout=30,
    ).json()

    in_group = json_of(snapferry(cloud, env, f"disk list -g {group} -o json"))
    everywhere = json_of(snapferry(cloud, env, "disk list -o json"))
    table = snapferry(cloud, env, f"disk list -g {group}")

    assert len(first_page["value"]) == 2
    assert first_page["nextLink"]
    assert sorted(d["name"] for d in in_group["value"]) == names
    assert set(in_group["value"][0]) >= {"id", "name", "location", "properties"}
    assert {d["id"] for d in in_group["value"]} <= {d["id"] for d in everywhere["value"]}
    assert f"5 disks in resource group {group}" in table.stdout
    assert all(name in table.stdout for name in names)


def test_disk_update_grows_and_refuses_to_shrink(
    cloud: RunningCloud, env: dict[str, str], client: Client, group: str
) -> None:
    client.disks.create(group, "grow", disk_body(location="eastus", size_gb=4))

    grown = json_of(
        snapferry(
            cloud, env, f"disk update -g {group} -n grow --size-gb 8 --tags tier=gold -o json"
        )
    )
    shrink = snapferry(cloud, env, f"disk update -g {group} -n grow --size-gb 2")
    nothing = snapferry(cloud, env, f"disk update -g {group} -n grow")

    assert grown["properties"]["diskSizeGB"] == 8
    assert grown["properties"]["diskSizeBytes"] == 8 * 1024**3
    assert grown["tags"] == {"tier": "gold"}
    assert shrink.returncode == 2
    assert shrink.stderr.startswith("error: a disk can only grow: 2 GiB is smaller than")
    assert shrink.stderr.endswith("(InvalidParameter)\n")
    assert client.disks.show(group, "grow")["properties"]["diskSizeGB"] == 8
    assert nothing.returncode == 2
    assert "nothing to update" in nothing.stderr


def test_disk_delete_asks_for_yes_and_is_repeatable(
    cloud: RunningCloud, env: dict[str, str], client: Client, group: str
) -> None:
    client.disks.create(group, "old", disk_body(location="eastus", size_gb=1))

    unconfirmed = snapferry(cloud, env, f"disk delete -g {group} -n old")
    deleted = json_of(snapferry(cloud, env, f"disk delete -g {group} -n old --yes -o json"))
    again = snapferry(cloud, env, f"disk delete -g {group} -n old --yes")

    assert unconfirmed.returncode == 2
    assert "pass --yes" in unconfirmed.stderr
    assert deleted == {"id": client.disks.id(group, "old"), "deleted": True}
    with pytest.raises(ResourceMissing):
        client.disks.show(group, "old")
    assert again.returncode == 0
    assert f"no disk {group}/old to delete" in again.stdout


def test_an_upload_disk_is_made_ready_to_upload(
    cloud: RunningCloud, env: dict[str, str], group: str
) -> None:
    disk = json_of(
        snapferry(
            cloud, env, f"disk create -g {group} -n up --upload-size-bytes {UPLOAD_BYTES} -o json"
        )
    )
    both = snapferry(cloud, env, f"disk create -g {group} -n x --source s --upload-size-bytes 512")

    assert disk["properties"]["creationData"]["createOption"] == "Upload"
    assert disk["properties"]["diskState"] == "ReadyToUpload"
    assert both.returncode == 2
    assert "exclude each other" in both.stderr


# --- snapshots ---------------------------------------------------------------------------------
def test_snapshots_incremental_full_list_restore_and_delete(
    cloud: RunningCloud, env: dict[str, str], client: Client, group: str
) -> None:
    disk = client.disks.create(group, "src", disk_body(location="eastus", size_gb=2))

    inc = json_of(snapferry(cloud, env, f"snapshot create -g {group} -n inc --source src -o json"))
    full = json_of(
        snapferry(
            cloud, env, f"snapshot create -g {group} -n full --source {disk['id']} --full -o json"
        )
    )
    listed = json_of(snapferry(cloud, env, f"snapshot list -g {group} -o json"))
    restored = json_of(
        snapferry(cloud, env, f"disk create -g {group} -n restored --source inc -o json")
    )
    missing = snapferry(cloud, env, f"snapshot create -g {group} -n x --source nope")
    deleted = snapferry(cloud, env, f"snapshot delete -g {group} -n full -y")

    assert inc["properties"]["incremental"] is True
    assert inc["properties"]["creationData"]["sourceResourceId"] == disk["id"]
    assert inc["location"] == "eastus"
    assert full["properties"]["incremental"] is False
    assert sorted(s["name"] for s in listed["value"]) == ["full", "inc"]
    assert restored["properties"]["creationData"]["createOption"] == "Copy"
    assert restored["properties"]["creationData"]["sourceResourceId"] == inc["id"]
    assert restored["properties"]["diskSizeGB"] == 2
    assert missing.returncode == 2
    assert f"no disk or snapshot named 'nope' in resource group {group}" in missing.stderr
    assert deleted.returncode == 0, deleted.stderr
    assert [s["name"] for s in client.snapshots.list(group)] == ["inc"]


def test_grant_and_revoke_access(
    cloud: RunningCloud, env: dict[str, str], client: Client, group: str
) -> None:
    client.disks.create(group, "shared", disk_body(location="eastus", size_gb=1))

    granted = json_of(snapferry(cloud, env, f"disk grant-access -g {group} -n shared -o json"))
    state = client.disks.show(group, "shared")["properties"]["diskState"]
    revoked = snapferry(cloud, env, f"disk revoke-access -g {group} -n shared")

    assert granted["accessSAS"].startswith("http")
    assert state == "ActiveSAS"
    assert revoked.returncode == 0, revoked.stderr
    assert client.disks.show(group, "shared")["properties"]["diskState"] == "Unattached"


# --- tokens ------------------------------------------------------------------------------------
def test_a_reader_token_lists_but_cannot_create(cloud: RunningCloud, env: dict[str, str]) -> None:
    other = OTHER_SUBSCRIPTION
    made = json_of(
        snapferry(
            cloud,
            env,
            f"token create --subscription {other} --role reader --name ci --days 2 -o json",
        )
    )
    table = snapferry(cloud, env, "token create --role Reader")
    reader = {**env, "SNAPFERRY_TOKEN": made["token"]}

    listed = json_of(snapferry(cloud, reader, f"disk list --subscription {other} -o json"))
    refused = snapferry(
        cloud, {**reader, "SNAPFERRY_SUBSCRIPTION": other}, "group create -g mine -l eastus"
    )
    elsewhere = snapferry(cloud, reader, "disk list")

    assert made["role"] == "Reader"
    assert made["name"] == "ci"
    assert made["subscription"] == other
    assert set(made) >= {"principalId", "tenantId", "token", "expiresOn"}
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[-1].count(".") == 2  # the JWT, whole, on its own line
    assert "Reader" in table.stdout
    assert listed == {"value": []}
    assert refused.returncode == 2
    assert refused.stderr.endswith("(AuthorizationFailed)\n")
    assert elsewhere.returncode == 2  # the reader holds no role on cloud.json's subscription
    assert "(AuthorizationFailed)" in elsewhere.stderr


# --- finding the cloud -------------------------------------------------------------------------
def test_endpoint_flag_beats_env_which_beats_cloud_json(
    cloud: RunningCloud, env: dict[str, str]
) -> None:
    dead = dead_endpoint()
    dead_env = {**env, "SNAPFERRY_ENDPOINT": dead}

    by_flag = snapferry(cloud, dead_env, f"group list --endpoint {cloud.endpoint}")
    by_env = snapferry(cloud, {**dead_env, "SNAPFERRY_TOKEN": "t"}, "group list --subscription s")
    no_token = snapferry(cloud, dead_env, "group list")

    assert by_flag.returncode == 0, by_flag.stderr
    assert by_env.returncode == 4
    assert f"cannot reach snapferry at {dead} (from $SNAPFERRY_ENDPOINT)" in by_env.stderr
    # cloud.json's admin token goes to cloud.json's endpoint only
    assert no_token.returncode == 2
    assert f"no token for {dead}: pass --token or set SNAPFERRY_TOKEN" in no_token.stderr


def test_no_cloud_anywhere_is_a_clear_usage_error(
    cloud: RunningCloud, env: dict[str, str], tmp_path: Path
) -> None:
    empty = {**env, "SNAPFERRY_HOME": str(tmp_path / "nothing")}

    proc = snapferry(cloud, empty, "disk list")
    as_json = snapferry(cloud, empty, "disk list -o json")

    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: no snapferry cloud configured")
    assert "`snapferry up`" in proc.stderr
    assert "--endpoint and --token" in proc.stderr
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout)["error"]["code"] == "NoCloud"


def test_an_unreachable_endpoint_exits_4(cloud: RunningCloud, env: dict[str, str]) -> None:
    dead = dead_endpoint()

    proc = snapferry(
        cloud, env, f"disk show -g g -n d --endpoint {dead} --token t --subscription {uuid.uuid4()}"
    )

    assert proc.returncode == 4
    assert proc.stderr == (
        f"error: cannot reach snapferry at {dead} (from --endpoint): is `snapferry up` running? "
        "(ServiceUnreachable)\n"
    )


def test_each_setting_resolves_flag_then_env_then_cloud_json(cloud: RunningCloud) -> None:
    saved = cloud.cloud
    env = {"SNAPFERRY_TOKEN": "env-token", "SNAPFERRY_SUBSCRIPTION": "env-sub"}

    from_file = resolve_cloud(data_dir=cloud.data_dir, environ={})
    from_env = resolve_cloud(data_dir=cloud.data_dir, environ=env)
    from_flags = resolve_cloud(
        saved["endpoint"] + "/", "flag-token", "flag-sub", cloud.data_dir, environ=env
    )

    assert (from_file.token, from_file.subscription) == (saved["token"], saved["subscription"])
    assert from_file.regions == ("eastus", "westus")
    assert (from_env.token, from_env.subscription) == ("env-token", "env-sub")
    assert (from_flags.token, from_flags.subscription) == ("flag-token", "flag-sub")
    assert from_flags.endpoint == saved["endpoint"]
    assert from_flags.regions == ("eastus", "westus")  # its own endpoint: cloud.json applies
    assert saved["token"] not in repr(from_file)
    assert Cloud("http://h", "secret", "s").default_location == "eastus"


# --- waiting and links, against a scripted server ----------------------------------------------
class ScriptedSession(requests.Session):
    """Answers requests with the given responses, in order, and records the URLs asked for."""

    def __init__(self, replies: Iterable[requests.Response]) -> None:
        super().__init__()
        self.replies = iter(replies)
        self.urls: list[str] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kw: Any) -> Any:
        self.urls.append(str(url))
        return next(self.replies)


def reply(status: int, doc: object = None, **headers: str) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = b"" if doc is None else json.dumps(doc).encode()
    resp.headers.update({k.replace("_", "-"): v for k, v in headers.items()})
    resp.url = "http://cloud.test/op"
    resp.request = requests.Request("GET", resp.url).prepare()
    return resp


SCRIPTED = Cloud("http://cloud.test", "secret", "sub")
STARTED = reply(202, Azure_AsyncOperation="http://cloud.test/op?api-version=1", Retry_After="7")


def test_a_failed_operation_raises_its_error_after_polling_as_asked() -> None:
    waits: list[float] = []
    session = ScriptedSession(
        [
            reply(200, {"status": "InProgress"}, Retry_After="2"),
            reply(200, {"status": "Failed", "error": {"code": "Boom", "message": "it broke"}}),
        ]
    )
    transport = Transport(SCRIPTED, session=session, sleep=waits.append)

    with pytest.raises(OperationFailed) as failed:
        transport.wait(STARTED, "creating disk g/d")

    assert failed.value.code == "Boom"
    assert failed.value.message == "creating disk g/d failed: it broke"
    assert waits == [0.1, 2.0]  # the first poll comes early, the next when Retry-After says
    assert session.urls == ["http://cloud.test/op?api-version=1"] * 2


def test_an_operation_that_never_ends_times_out() -> None:
    ticks = itertools.count(0, 100)
    session = ScriptedSession(reply(200, {"status": "InProgress"}) for _ in range(10))
    transport = Transport(
        SCRIPTED,
        session=session,
        sleep=lambda _: None,
        clock=lambda: next(ticks),
        operation_timeout=250,
    )

    with pytest.raises(OperationTimeout) as timed_out:
        transport.wait(STARTED, "deleting disk g/d")

    assert "deleting disk g/d: still in progress after 250 s" in timed_out.value.message
    assert len(session.urls) == 3


def test_links_to_another_host_are_not_followed() -> None:
    page = reply(200, {"value": [{"name": "a"}], "nextLink": "http://elsewhere.test/page2"})
    session = ScriptedSession([page])
    transport = Transport(SCRIPTED, session=session)

    with pytest.raises(ClientError) as refused:
        list(transport.pages("/subscriptions/sub/providers/Microsoft.Compute/disks"))

    assert refused.value.code == "UnexpectedLink"
    assert len(session.urls) == 1  # the token never went to elsewhere.test
