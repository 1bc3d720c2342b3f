"""A small typed HTTP client for a snapferry cloud's ARM API, for the CLI and scripts.

Nouns:

* **cloud** — ``Cloud``: an endpoint URL, a bearer token (a secret, never printed), a
  subscription and, when read from ``cloud.json``, its regions and TLS CA. ``resolve_cloud``
  finds them: explicit arguments, then ``$SNAPFERRY_ENDPOINT``/``$SNAPFERRY_TOKEN``/
  ``$SNAPFERRY_SUBSCRIPTION``, then the ``cloud.json`` that ``snapferry up`` writes.
* **client** — ``Client``: resource groups, principals, and ``disks``/``snapshots``
  (``Resources``: create, show, list, update, delete, grant and revoke access). Results are ARM
  JSON (``Resource``); lists follow ``nextLink`` to the end. ``copies`` reports where copies
  between regions stand.
* **operation** — a change the server answers 202 to. Every changing call waits for it (polling
  ``Azure-AsyncOperation`` as ``Retry-After`` asks, up to a timeout, 600 s by default) and
  reports progress to an optional callback.
* **errors** — ``ClientError`` subclasses carrying the server's ARM code, message and HTTP
  status (see ``snapferry.client.errors``).

Speaks plain HTTP through ``requests``; never imports the server side (web framework, engine).
"""

from snapferry.client.api import (
    Client,
    Resource,
    Resources,
    copy_start_body,
    disk_body,
    snapshot_body,
)
from snapferry.client.config import Cloud, resolve_cloud
from snapferry.client.errors import (
    AccessDenied,
    BadRequest,
    ClientError,
    NotConfigured,
    OperationFailed,
    OperationTimeout,
    ResourceConflict,
    ResourceMissing,
    ServerError,
    Unreachable,
)
from snapferry.client.transport import API_VERSION, ProgressFn

__all__ = [
    "API_VERSION",
    "AccessDenied",
    "BadRequest",
    "Client",
    "ClientError",
    "Cloud",
    "NotConfigured",
    "OperationFailed",
    "OperationTimeout",
    "ProgressFn",
    "Resource",
    "ResourceConflict",
    "ResourceMissing",
    "Resources",
    "ServerError",
    "Unreachable",
    "copy_start_body",
    "disk_body",
    "resolve_cloud",
    "snapshot_body",
]
