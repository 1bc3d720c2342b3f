"""Where the cloud is and who we are: ``Cloud`` and the order its settings are found in."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from snapferry.client.errors import NotConfigured
from snapferry.settings import default_data_dir

ENDPOINT_ENV = "SNAPFERRY_ENDPOINT"
TOKEN_ENV = "SNAPFERRY_TOKEN"
SUBSCRIPTION_ENV = "SNAPFERRY_SUBSCRIPTION"
DEFAULT_LOCATION = "eastus"


@dataclass(frozen=True)
class Cloud:
    """Connection settings of one cloud. ``token`` is a secret and is left out of ``repr``.

    ``ca`` is a CA certificate file to verify TLS against (None: the system's trust store).
    ``regions`` are the cloud's regions when known (from cloud.json), first one the default.
    ``source`` says where the endpoint came from, for messages.
    """

    endpoint: str
    token: str = field(repr=False)
    subscription: str
    regions: tuple[str, ...] = ()
    ca: str | None = None
    source: str = ""

    @property
    def default_location(self) -> str:
        """The first region of cloud.json, else ``eastus``."""
        return self.regions[0] if self.regions else DEFAULT_LOCATION


def resolve_cloud(
    endpoint: str | None = None,
    token: str | None = None,
    subscription: str | None = None,
    data_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Cloud:
    """The cloud to talk to. Each setting is, first match wins: the argument (a CLI flag), then
    ``$SNAPFERRY_ENDPOINT`` / ``$SNAPFERRY_TOKEN`` / ``$SNAPFERRY_SUBSCRIPTION``, then the
    ``cloud.json`` in data_dir (default ``settings.default_data_dir()``) that ``snapferry up``
    writes.

    cloud.json's token, subscription, regions and CA are used only when the endpoint is
    cloud.json's own, so its admin token is never sent to another server. Raises NotConfigured
    when a setting is found nowhere, or when cloud.json exists but cannot be read.
    """
    env = os.environ if environ is None else environ
    where = (data_dir.expanduser() if data_dir else default_data_dir()) / "cloud.json"
    saved = _load(where)
    url, source = _endpoint(endpoint, env.get(ENDPOINT_ENV), saved, where)
    own = saved if saved is not None and _same(url, _text(saved, "endpoint", where)) else None

    def pick(given: str | None, env_name: str, key: str) -> str:
        value = given or env.get(env_name) or (_text(own, key, where) if own else None)
        if value:
            return value
        message = f"no {key} for {url}: pass --{key} or set {env_name}"
        if saved is not None:
            message += f" ({where} is for another endpoint, so none of it is used)"
        raise NotConfigured(message)

    return Cloud(
        endpoint=url,
        token=pick(token, TOKEN_ENV, "token"),
        subscription=pick(subscription, SUBSCRIPTION_ENV, "subscription"),
        regions=tuple(str(r) for r in (own or {}).get("regions") or ()),
        ca=str(own["ca"]) if own and own.get("ca") else None,
        source=source,
    )


def _load(where: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(where.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise NotConfigured(f"cannot read {where}: {exc}") from None
    if not isinstance(doc, dict):
        raise NotConfigured(f"cannot read {where}: not a JSON object")
    return doc


def _text(doc: Mapping[str, Any], key: str, where: Path) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise NotConfigured(f"cannot read {where}: {key!r} is missing")
    return value


def _endpoint(
    given: str | None, from_env: str | None, saved: Mapping[str, Any] | None, where: Path
) -> tuple[str, str]:
    """The endpoint URL (no trailing slash) and where it came from."""
    if given:
        return _check_endpoint(given, "--endpoint")
    if from_env:
        return _check_endpoint(from_env, f"${ENDPOINT_ENV}")
    if saved is not None:
        return _check_endpoint(_text(saved, "endpoint", where), str(where))
    raise NotConfigured(
        f"no snapferry cloud configured: {where} does not exist; start one with "
        f"`snapferry up`, or pass --endpoint and --token (or set {ENDPOINT_ENV} and {TOKEN_ENV})"
    )


def _check_endpoint(url: str, source: str) -> tuple[str, str]:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise NotConfigured(f"the endpoint from {source} must be an http:// or https:// URL")
    return url.strip().rstrip("/"), source


def _same(a: str, b: str) -> bool:
    """True if two endpoint URLs name the same server (scheme, host and port)."""
    x, y = urlsplit(a.rstrip("/")), urlsplit(b.rstrip("/"))
    return (x.scheme, x.hostname, x.port, x.path) == (y.scheme, y.hostname, y.port, y.path)
