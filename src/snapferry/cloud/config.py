"""The cloud's configuration: a TOML file, or the embedded default (``eastus`` with zones 1, 2
and 3, ``westus`` without zones).

```toml
data_dir = "/var/lib/snapferry"       # --data-dir wins over this
subscription = "..."                   # the admin's subscription (made once if absent)

[frontdoor]
listen = "127.0.0.1:7780"              # --port wins over the port
tls = false                            # serve HTTPS with a CA the cloud generates
public_url = "https://snapferry.example:7780"  # the base of links handed out (default: listen)
key_file = "frontdoor-key"             # shared by the front door and its regions

[peers]
key_file = "peer-key"                  # shared by regions that copy snapshots between them

[http]                                 # every listener: front door and regions
head_timeout = 10                      # seconds for a request's head to arrive
body_timeout = 30                      # seconds a request body may go without a byte
write_timeout = 60                     # seconds an answer may wait on a client reading nothing
keep_alive = 5                         # seconds an idle connection stays open between requests
max_connections = 0                    # per listener; 0: from the process's open-file limit

[[regions]]
name = "eastus"
zones = ["1", "2", "3"]
listen = "127.0.0.1:0"                 # 0: any free port (embedded)
url = "http://10.0.0.5:7781"           # how the front door reaches it (separate processes)
db_url = "postgresql+psycopg://..."    # default: SQLite in the region's data directory
data_dir = "regions/eastus"            # relative to data_dir
page_size = 100                        # list page size
operation_delay = 0.0                  # fault injection: hold background operations (tests)
copy_lease_seconds = 15                # a copy worker that dies is taken over after this
copy_streams = 4                       # concurrent fetches per copy (Enhanced: twice as many)
copy_jobs = 4                          # copies this region's worker runs at once (others queue)
max_active_copies = 100                # copies in progress per subscription into this region
peer_faults = ""                       # fault injection on peer calls, e.g. "drop=0.1" (tests)
copy_event_days = 14                   # events of a deleted copy target are kept this long
copy_stall_seconds = 600               # a started copy that moves nothing this long is Stalled
read_buffer_mib = 512                  # bytes held for downloads being sent, all together
reserve_percent = 1.0                  # space kept free for deletions and recovery: this much
reserve_mib = 256                      #   of the data directory's filesystem, at most this
upkeep_seconds = 30                    # how often seals and folds the storage refused are retried
scrub_hours = 168                      # a scrub of every stored version this often; 0: never
gc_hours = 24                          # GC (dead packs go after an hour's grace); 0: never
compact_hours = 24                     # compaction of long patch chains; 0: never
repair_hours = 1                       # zone repair (copies what a lost zone misses); 0: never
```
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapferry.cloud.guard import Limits
from snapferry.errors import InvalidInput
from snapferry.settings import default_data_dir

DEFAULT_PORT = 7780
_NAME = re.compile(r"[a-z][a-z0-9]{1,31}")


PASS_HOURS = {"scrub_hours": 168.0, "gc_hours": 24.0, "compact_hours": 24.0, "repair_hours": 1.0}
"""How often a serving region runs each maintenance pass by default (0: never)."""


def _hours(raw: dict[str, Any], region: str, key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 8784:
        raise InvalidInput(f"region {region}: {key} must be between 0 (never) and 8784 hours")
    return float(value)


@dataclass(frozen=True)
class RegionConfig:
    name: str
    zones: tuple[str, ...] = ()
    listen: str = "127.0.0.1:0"
    url: str | None = None
    db_url: str | None = None
    data_dir: Path | None = None
    page_size: int = 100
    operation_delay: float = 0.0
    copy_lease_seconds: float = 15.0
    copy_streams: int = 4
    copy_jobs: int = 4
    max_active_copies: int = 100
    peer_faults: str = ""
    copy_event_days: float = 14.0
    copy_stall_seconds: float = 600.0
    read_buffer_mib: int = 512
    reserve_percent: float = 1.0
    reserve_mib: int = 256
    upkeep_seconds: float = 30.0
    scrub_hours: float = 168.0
    gc_hours: float = 24.0
    compact_hours: float = 24.0
    repair_hours: float = 1.0

    def directory(self, root: Path) -> Path:
        return self.data_dir if self.data_dir is not None else root / "regions" / self.name


@dataclass(frozen=True)
class CloudConfig:
    data_dir: Path
    listen: str = f"127.0.0.1:{DEFAULT_PORT}"
    tls: bool = False
    public_url: str | None = None
    key_file: Path | None = None
    peer_key_file_path: Path | None = None
    subscription: str | None = None
    http: Limits = field(default_factory=Limits)
    regions: tuple[RegionConfig, ...] = field(
        default=(RegionConfig("eastus", ("1", "2", "3")), RegionConfig("westus"))
    )

    @property
    def frontdoor_key_file(self) -> Path:
        return self.key_file if self.key_file is not None else self.data_dir / "frontdoor-key"

    @property
    def peer_key_file(self) -> Path:
        """The key regions present to each other (never the front door's)."""
        if self.peer_key_file_path is not None:
            return self.peer_key_file_path
        return self.data_dir / "peer-key"

    def region(self, name: str | None) -> RegionConfig:
        """The named region, or the only one when name is None."""
        if name is None:
            if len(self.regions) != 1:
                raise InvalidInput(
                    "the configuration has several regions: name one with --name "
                    f"({', '.join(r.name for r in self.regions)})"
                )
            return self.regions[0]
        for region in self.regions:
            if region.name == name:
                return region
        raise InvalidInput(f"the configuration has no region {name!r}")


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` → (host, port), or InvalidInput."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise InvalidInput(f"listen address {listen!r} must look like 127.0.0.1:7780")
    return host, int(port)


RESERVED_NAMES = ("subscriptions", "snapferry")
"""First path segments of a region's ARM routes, so never region names."""


def _region(raw: Any, root: Path) -> RegionConfig:
    if not isinstance(raw, dict):
        raise InvalidInput("each [[regions]] entry must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in RESERVED_NAMES:
        raise InvalidInput(
            f"region name {name!r} must be 2-32 lowercase letters and digits, like eastus "
            f"(not {' or '.join(RESERVED_NAMES)}: a region's SAS paths start with its name)"
        )
    zones = raw.get("zones", [])
    if not isinstance(zones, list) or not all(isinstance(z, str) and z for z in zones):
        raise InvalidInput(f"region {name}: zones must be a list of strings")
    page_size = raw.get("page_size", 100)
    if not isinstance(page_size, int) or not 1 <= page_size <= 1000:
        raise InvalidInput(f"region {name}: page_size must be between 1 and 1000")
    listen = str(raw.get("listen", "127.0.0.1:0"))
    split_listen(listen)
    data_dir = raw.get("data_dir")
    delay = raw.get("operation_delay", 0.0)
    if not isinstance(delay, int | float) or not 0 <= delay <= 60:
        raise InvalidInput(f"region {name}: operation_delay must be between 0 and 60 seconds")
    lease = raw.get("copy_lease_seconds", 15.0)
    if not isinstance(lease, int | float) or not 1 <= lease <= 3600:
        raise InvalidInput(f"region {name}: copy_lease_seconds must be between 1 and 3600")
    streams = raw.get("copy_streams", 4)
    if not isinstance(streams, int) or not 1 <= streams <= 32:
        raise InvalidInput(f"region {name}: copy_streams must be between 1 and 32")
    copy_jobs = raw.get("copy_jobs", 4)
    if not isinstance(copy_jobs, int) or not 1 <= copy_jobs <= 256:
        raise InvalidInput(f"region {name}: copy_jobs must be between 1 and 256")
    max_active = raw.get("max_active_copies", 100)
    if not isinstance(max_active, int) or not 1 <= max_active <= 100_000:
        raise InvalidInput(f"region {name}: max_active_copies must be between 1 and 100000")
    event_days = raw.get("copy_event_days", 14.0)
    if not isinstance(event_days, int | float) or not 0 < event_days <= 3650:
        raise InvalidInput(f"region {name}: copy_event_days must be more than 0 and at most 3650")
    stall = raw.get("copy_stall_seconds", 600.0)
    if not isinstance(stall, int | float) or not 1 <= stall <= 86400:
        raise InvalidInput(f"region {name}: copy_stall_seconds must be between 1 and 86400")
    read_buffer = raw.get("read_buffer_mib", 512)
    if isinstance(read_buffer, bool) or not isinstance(read_buffer, int) or not read_buffer >= 8:
        raise InvalidInput(f"region {name}: read_buffer_mib must be 8 or more")
    reserve_percent = raw.get("reserve_percent", 1.0)
    numeric = isinstance(reserve_percent, int | float) and not isinstance(reserve_percent, bool)
    if not numeric or not 0 <= reserve_percent <= 50:
        raise InvalidInput(f"region {name}: reserve_percent must be a number from 0 to 50")
    reserve_mib = raw.get("reserve_mib", 256)
    if isinstance(reserve_mib, bool) or not isinstance(reserve_mib, int) or reserve_mib < 0:
        raise InvalidInput(f"region {name}: reserve_mib must be 0 or more")
    upkeep = raw.get("upkeep_seconds", 30.0)
    if isinstance(upkeep, bool) or not isinstance(upkeep, int | float) or not 0.1 <= upkeep <= 3600:
        raise InvalidInput(f"region {name}: upkeep_seconds must be between 0.1 and 3600")
    hours = {key: _hours(raw, name, key, default) for key, default in PASS_HOURS.items()}
    faults = raw.get("peer_faults", "")
    if not isinstance(faults, str):
        raise InvalidInput(f"region {name}: peer_faults must be a string like 'drop=0.1'")
    return RegionConfig(
        copy_lease_seconds=float(lease),
        copy_streams=streams,
        copy_jobs=copy_jobs,
        max_active_copies=max_active,
        peer_faults=faults,
        copy_event_days=float(event_days),
        copy_stall_seconds=float(stall),
        read_buffer_mib=read_buffer,
        reserve_percent=float(reserve_percent),
        reserve_mib=reserve_mib,
        upkeep_seconds=float(upkeep),
        scrub_hours=hours["scrub_hours"],
        gc_hours=hours["gc_hours"],
        compact_hours=hours["compact_hours"],
        repair_hours=hours["repair_hours"],
        operation_delay=float(delay),
        name=name,
        zones=tuple(zones),
        listen=listen,
        url=raw.get("url"),
        db_url=raw.get("db_url"),
        data_dir=None if data_dir is None else root / str(data_dir),
        page_size=page_size,
    )


def _limits(raw: Any) -> Limits:
    if not isinstance(raw, dict):
        raise InvalidInput("[http] must be a table")
    unknown = set(raw) - set(Limits.__dataclass_fields__)
    if unknown:
        raise InvalidInput(f"[http] has no setting {sorted(unknown)[0]!r}")
    values: dict[str, Any] = {}
    for name in ("head_timeout", "body_timeout", "write_timeout", "keep_alive"):
        value = raw.get(name, getattr(Limits, name))
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0.1 <= value <= 3600
        ):
            raise InvalidInput(f"[http] {name} must be between 0.1 and 3600 seconds")
        values[name] = float(value)
    cap = raw.get("max_connections", 0)
    if isinstance(cap, bool) or not isinstance(cap, int) or not 0 <= cap <= 1_000_000:
        raise InvalidInput("[http] max_connections must be 0 (automatic) or a positive number")
    return Limits(**values, max_connections=cap)


def load(
    path: Path | None, *, data_dir: Path | None = None, port: int | None = None
) -> CloudConfig:
    """The configuration in path (None: the embedded default), with command-line overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"{path} is not valid TOML: {exc}") from None
    root = Path(data_dir or raw.get("data_dir") or default_data_dir()).expanduser().absolute()
    front = raw.get("frontdoor", {})
    listen = str(front.get("listen", f"127.0.0.1:{DEFAULT_PORT}"))
    host = split_listen(listen)[0]
    if port is not None:
        listen = f"{host}:{port}"
    regions = tuple(_region(r, root) for r in raw.get("regions", []))
    names = [r.name for r in regions]
    if len(set(names)) != len(names):
        raise InvalidInput("region names must be unique")
    key_file = front.get("key_file")
    peer_key = raw.get("peers", {}).get("key_file")
    public_url = front.get("public_url")
    if public_url is not None and not (
        isinstance(public_url, str) and public_url.startswith(("http://", "https://"))
    ):
        raise InvalidInput("[frontdoor] public_url must be an http:// or https:// URL")
    config = CloudConfig(
        http=_limits(raw.get("http", {})),
        data_dir=root,
        listen=listen,
        tls=bool(front.get("tls", False)),
        public_url=public_url,
        key_file=None if key_file is None else root / str(key_file),
        peer_key_file_path=None if peer_key is None else root / str(peer_key),
        subscription=raw.get("subscription"),
    )
    if regions:
        config = CloudConfig(**{**config.__dict__, "regions": regions})
    return config
