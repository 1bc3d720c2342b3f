"""Connecting the official Azure SDKs to a snapferry cloud.

```python
from snapferry.sdk import compute_client
client = compute_client()           # reads ~/.local/share/snapferry/cloud.json
print([d.name for d in client.disks.list()])
```

``connect(ResourceManagementClient)`` does the same for any azure-mgmt client. The credential
hands the cloud's token to the SDK; ``AllowHttp`` lets azure-core send a bearer token over plain
HTTP to a loopback cloud (over HTTPS it is not needed, and ``cloud.json``'s ``ca`` is trusted).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from azure.core.credentials import AccessToken
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy

from snapferry.errors import InvalidInput
from snapferry.settings import default_data_dir

T = TypeVar("T")


def load_cloud(path: Path | str | None = None) -> dict[str, Any]:
    """The cloud.json at path (default: the default data directory's)."""
    where = Path(path) if path is not None else default_data_dir() / "cloud.json"
    try:
        cloud: dict[str, Any] = json.loads(where.read_text())
    except FileNotFoundError:
        raise InvalidInput(f"no cloud at {where}: start one with `snapferry up`") from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {where}: {exc}") from None
    return cloud


class TokenCredential:
    """An azure-core credential that returns one fixed bearer token."""

    def __init__(self, token: str, expires_on: int) -> None:
        self._token = AccessToken(token, expires_on)

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return self._token


class AllowHttp(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """Lets the SDK's bearer-token policy send the token over plain HTTP (loopback clouds)."""

    def on_request(self, request: PipelineRequest) -> None:  # type: ignore[type-arg]
        request.context["enforce_https"] = False


def connect(
    client_class: type[T], cloud: dict[str, Any] | Path | str | None = None, **kw: Any
) -> T:
    """An azure-mgmt client of client_class connected to the cloud (a cloud.json path or its
    loaded content; default the default data directory's). Keywords go to the client."""
    info = cloud if isinstance(cloud, dict) else load_cloud(cloud)
    credential = TokenCredential(info["token"], int(info.get("expiresOn", 0)) or 2**31 - 1)
    options: dict[str, Any] = {
        "base_url": info["endpoint"],
        "per_call_policies": [AllowHttp()],
        "polling_interval": 1,
    }
    if info.get("ca"):
        options["connection_verify"] = info["ca"]
    options.update(kw)
    subscription = kw.pop("subscription_id", None) or info["subscription"]
    options.pop("subscription_id", None)
    return client_class(credential, subscription, **options)  # type: ignore[call-arg]


def compute_client(cloud: dict[str, Any] | Path | str | None = None, **kw: Any) -> Any:
    """An ``azure.mgmt.compute.ComputeManagementClient`` for the cloud (see ``connect``)."""
    from azure.mgmt.compute import ComputeManagementClient

    return connect(ComputeManagementClient, cloud, **kw)
