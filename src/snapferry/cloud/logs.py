"""How a server process writes its log on stderr: readable text (the default) or one JSON object
per line (``--log-format json``), each line carrying the id of the request it was written for.

Lines of a request name its id (``requestId``, the ``x-ms-request-id`` its answer carried), and
the request log's fields (``method``, ``path``, ``route``, ``status``, ``durationMs``) when it
is the request's own line. Nothing logged holds a grant or a key: paths are logged without
their query (where a SAS travels), and error messages name resources, never credentials.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from snapferry.api.observe import REQUEST_ID, printable

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
FIELDS = ("method", "path", "route", "status", "durationMs")
"""Fields a record may carry (``extra=``) that a JSON line keeps."""


def _when(record: logging.LogRecord) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


class _RequestId(logging.Filter):
    """Gives each record the id of the request being served where it was written."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.requestId = REQUEST_ID.get()
        return True


class JsonLines(logging.Formatter):
    """``{"time", "level", "logger", "message", "requestId"?, fields…, "exception"?}``."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _when(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "requestId", None)
        if request_id:
            doc["requestId"] = request_id
        for name in FIELDS:
            if hasattr(record, name):
                doc[name] = getattr(record, name)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class Text(logging.Formatter):
    """``2026-12-02T23:59:01.123Z INFO snapferry.requests [request 1b4e…] message``."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "requestId", None)
        where = f" [request {request_id}]" if request_id else ""
        message = printable(record.getMessage())  # one record, one line
        line = f"{_when(record)} {record.levelname} {record.name}{where} {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(fmt: str = "text", level: str = "info", stream: TextIO | None = None) -> None:
    """Send snapferry's records at ``level`` and up, and other libraries' warnings, to stream
    (stderr) in ``fmt``. Replaces any handler configured before (a process configures once)."""
    if fmt not in FORMATS or level not in LEVELS:
        raise ValueError(f"log format {fmt!r} or level {level!r} unknown")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_RequestId())
    handler.setFormatter(JsonLines() if fmt == "json" else Text())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("snapferry").setLevel(level.upper())
