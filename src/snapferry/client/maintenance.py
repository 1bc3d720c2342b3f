"""Asking a running region for a maintenance pass (``scrub``, ``gc``, ``compact``) over HTTP:
``POST /snapferry/maintenance/v1/<pass>`` (``api.maintenance``) with its cloud's front-door key,
the pass's progress told as the region streams it, its report returned as a dict."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from snapferry.control.access import KEY_HEADER
from snapferry.errors import InvalidInput, PeerUnavailable, SnapferryError

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ServingRegion:
    """A region a running cloud serves: its URL and the key its front door presents."""

    url: str
    key: str


def remote_pass(
    served: ServingRegion, task: str, params: dict[str, str], progress: Progress | None
) -> dict[str, Any]:
    """The pass run by the serving region, its progress told as the region streams it."""
    url = f"{served.url}/snapferry/maintenance/v1/{task}"
    try:
        with requests.post(
            url, params=params, headers={KEY_HEADER: served.key}, stream=True, timeout=(10, None)
        ) as reply:
            if reply.status_code == 400:
                raise InvalidInput(_message(reply))
            if reply.status_code != 200:
                raise PeerUnavailable(
                    f"the running region refused the {task} ({reply.status_code}): "
                    f"{reply.text[:300]}"
                )
            for raw in reply.iter_lines():
                line = json.loads(raw) if raw else {}
                if "progress" in line and progress is not None:
                    progress(*line["progress"])
                elif "result" in line:
                    return dict(line["result"])
                elif "error" in line:
                    failed = SnapferryError(str(line["error"]["message"]))
                    failed.code = str(line["error"]["code"])
                    raise failed
    except requests.RequestException as exc:
        raise PeerUnavailable(f"the running region did not answer the {task}: {exc}") from None
    raise PeerUnavailable(f"the running region stopped answering the {task} before its end")


def _message(reply: requests.Response) -> str:
    """The message of an ARM error envelope, or the body's start."""
    try:
        return str(reply.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return reply.text[:300]
