"""Log lines that could come once per request (a full disk, an exhausted file table) come at
most once a minute per kind, each saying how many were left out."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

LOG_EVERY = 60.0


class Throttled:
    """One warning per kind per ``every`` seconds on ``logger``, with how many were not logged.
    Safe from any thread."""

    def __init__(self, logger: logging.Logger, every: float = LOG_EVERY) -> None:
        self.logger = logger
        self.every = every
        self._last: dict[str, float] = {}
        self._quiet: dict[str, int] = {}
        self._lock = threading.Lock()

    def warn(self, kind: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -self.every) < self.every:
                self._quiet[kind] = self._quiet.get(kind, 0) + 1
                return
            more = self._quiet.pop(kind, 0)
            self._last[kind] = now
        suffix = f" ({more} more since the last such line)" if more else ""
        self.logger.warning(message + suffix, *args)
