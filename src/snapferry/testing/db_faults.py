"""Fault injection on a real database: statements a test picks fail as a full or failing disk
makes them fail (SQLite's ``database or disk is full`` or ``disk I/O error``), everything else
runs as it would."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Engine, event

Pick = Callable[[str, Mapping[str, Any]], bool]


class FailingStatements:
    """Hooks ``engine``: while a pick is armed, the next ``times`` statements it picks (by SQL
    text and parameters) raise ``sqlite3.OperationalError(message)``."""

    FULL = "database or disk is full"
    IO_ERROR = "disk I/O error"

    def __init__(self, engine: Engine) -> None:
        self._lock = threading.Lock()
        self._pick: Pick | None = None
        self._left = 0
        self._message = self.FULL
        self.failed = 0
        event.listen(engine, "before_cursor_execute", self._check)

    def arm(self, pick: Pick, times: int = 1, message: str = FULL) -> None:
        with self._lock:
            self._pick, self._left, self._message = pick, times, message

    def _check(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        with self._lock:
            if self._pick is None or self._left <= 0:
                return
            named = getattr(context, "compiled_parameters", None) or [{}]
            if not self._pick(statement, named[0]):
                return
            self._left -= 1
            self.failed += 1
            message = self._message
        raise sqlite3.OperationalError(message)
