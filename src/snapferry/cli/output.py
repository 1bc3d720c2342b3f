"""How results leave the CLI: rich tables for people, one JSON document for programs, exit codes.

Contract: with ``--output json`` a command writes exactly one JSON object to stdout and nothing
else (an error becomes ``{"error": {"code": ..., "message": ...}}``); progress bars and error
messages always go to stderr. With ``--output table`` stdout carries tables meant for people, not
for parsing. Cell text is never read as rich markup, so ``[`` in a path or message prints as is.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import IntEnum
from typing import Any, TypeVar

import click
from rich import box
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

FORMATS = ("table", "json")
"""Values of ``--output``."""

ProgressFn = Callable[[int, int], None]
F = TypeVar("F", bound=Callable[..., Any])
_FORMAT_KEY = "snapferry.output"


class ExitCode(IntEnum):
    """The process exit status of every command."""

    OK = 0
    PROBLEMS = 1
    """The command ran and found something wrong (scrub problems, a demo check that failed)."""
    USAGE = 2
    """The caller asked for something wrong: bad option, no region there, unknown id."""
    BUSY = 3
    """Another process holds the region's data directory."""
    FAILURE = 4
    """The command could not finish: corrupt or unreadable storage, I/O error, internal error."""


def output_option(f: F) -> F:
    """The ``--output/-o table|json`` option. It is parsed first and remembered on the context,
    so that errors raised later (even while parsing other options) use the same format."""
    return click.option(
        "--output",
        "-o",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        is_eager=True,
        callback=_remember_format,
        help="table: for people; json: one JSON document on stdout.",
    )(f)


def _remember_format(ctx: click.Context, _param: click.Parameter, value: str) -> str:
    ctx.meta[_FORMAT_KEY] = value
    return value


def current_format(ctx: click.Context) -> str:
    """The ``--output`` format of the command being run (``table`` until it is known)."""
    return str(ctx.meta.get(_FORMAT_KEY, "table"))


def emit(
    fmt: str, doc: Mapping[str, object], human: Callable[[], Iterable[RenderableType]]
) -> None:
    """Print a command's result: doc as one JSON document, or what human() renders as tables."""
    if fmt == "json":
        write_json(doc)
        return
    console = Console(highlight=False)
    for renderable in human():
        console.print(renderable)


def write_json(doc: Mapping[str, object]) -> None:
    """doc as indented JSON plus a newline on stdout."""
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    sys.stdout.flush()


def error(
    fmt: str,
    code: str,
    message: str,
    hint: str | None = None,
    *,
    request_id: str | None = None,
    server_fault: bool = False,
) -> None:
    """Report a failure: ``error: <message> (<code>)`` on stderr — ``(<code>, request <id>)``
    when the server failed, so its log can be searched — and in json mode the JSON error
    document (with ``requestId`` when the server gave one) on stdout. Messages are the errors'
    own texts, which carry no secrets."""
    prefix = f"{hint}: " if hint else ""
    where = f", request {request_id}" if request_id and server_fault else ""
    click.echo(f"error: {prefix}{message} ({code}{where})", err=True)
    if fmt == "json":
        doc = {"code": code, "message": message}
        if request_id:
            doc["requestId"] = request_id
        write_json({"error": doc})


def kv_table(title: str, rows: Iterable[tuple[str, object]]) -> Table:
    """A two-column table of labelled values."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for label, value in rows:
        table.add_row(Text(label), Text(str(value)))
    return table


def grid_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    """A table with a header row."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    return table


def line(text: str, style: str = "") -> Text:
    """A line of plain text (no markup)."""
    return Text(text, style=style)


def size(value: int) -> str:
    """Bytes for people: ``5.0 MiB (5,252,288 B)``; under 1 KiB as plain bytes."""
    if value < 1024:
        return f"{value} B"
    exponent = min((value.bit_length() - 1) // 10, len(_UNITS) - 1)
    return f"{value / 1024**exponent:.1f} {_UNITS[exponent]} ({value:,} B)"


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


@contextmanager
def progress_bar(
    description: str, enabled: bool, *, percent: bool = False
) -> Iterator[ProgressFn | None]:
    """A byte-progress callback drawing a bar on stderr (with the percentage done when
    ``percent``), or None when not enabled (use it only when stderr is a terminal). The bar
    disappears when the block ends."""
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        *((TaskProgressColumn(),) if percent else ()),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
