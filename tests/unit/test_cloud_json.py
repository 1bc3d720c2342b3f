"""cloud.json: private, and its token always owns the subscription it names."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from snapferry.cloud.config import CloudConfig
from snapferry.cloud.host import write_cloud_json
from snapferry.identity import Registry
from snapferry.meta.db import open_database, sqlite_url


def test_the_admin_token_owns_the_configured_subscription(tmp_path: Path) -> None:
    db = open_database(sqlite_url(tmp_path / "f.db"))
    registry = Registry(db, tmp_path / "keys", issuer="snapferry")
    regions = {"eastus": "http://127.0.0.1:2/"}
    config = CloudConfig(data_dir=tmp_path)
    first = write_cloud_json(config, "http://127.0.0.1:1", registry, regions)
    path = tmp_path / "cloud.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    written = json.loads(path.read_text())
    assert written["subscription"] == first["subscription"]
    assert written["metrics"] == {
        "frontdoor": "http://127.0.0.1:1/metrics",
        "eastus": "http://127.0.0.1:2/metrics",
    }
    moved = CloudConfig(data_dir=tmp_path, subscription="configured-sub")
    second = write_cloud_json(moved, "http://127.0.0.1:1", registry, regions)
    principal = registry.authenticate(second["token"])
    assert principal.can_write("configured-sub")
    assert principal.can_write(first["subscription"])
    db.dispose()
