"""Fault injection on a real database: statements a test picks fail as a full or failing disk
makes them fail (SQLite's ``database or disk is full`` or ``disk I/O error``, wrapped as
SQLAlchemy wraps a driver's error), everything else runs as it would."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError

Pick = Callable[[str, Mapping[str, Any]], bool]


class FailingStatements:
    """Hooks ``engine`` (or, given the ``Engine`` class, every database of this process):
    while a pick is armed, the next ``times`` statements it picks (by SQL text and parameters,
    on a database whose URL contains ``where``) raise SQLAlchemy's ``OperationalError`` around
    ``sqlite3.OperationalError(message)``.
    ``watch`` sees every statement, with its database's URL, until ``close``."""

    FULL = "database or disk is full"
    IO_ERROR = "disk I/O error"

    def __init__(self, engine: Engine | type[Engine]) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._pick: Pick | None = None
        self._where = ""
        self._left = 0
        self._message = self.FULL
        self.failed = 0
        self.watch: Callable[[str, str, Mapping[str, Any]], None] | None = None
        event.listen(engine, "before_cursor_execute", self._check)

    def arm(self, pick: Pick, times: int = 1, message: str = FULL, where: str = "") -> None:
        with self._lock:
            self._pick, self._left, self._message, self._where = pick, times, message, where

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._check)

    def _check(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        named = getattr(context, "compiled_parameters", None) or [{}]
        url = str(conn.engine.url)
        with self._lock:
            if self.watch is not None:
                self.watch(url, statement, named[0])
            if self._pick is None or self._left <= 0 or self._where not in url:
                return
            if not self._pick(statement, named[0]):
                return
            self._left -= 1
            self.failed += 1
            message = self._message
        driver = sqlite3.OperationalError(message)
        raise OperationalError(statement, params, driver) from driver
