"""The ``snapferry`` console script: the command group, ``--version`` and error translation.

Commands are imported when named (``LAZY``): ``snapferry disk list`` loads the client, not the
engine or the web servers, so a command talking to a running cloud starts in a fraction of the
time ``up`` needs to load.

Every error becomes one line on stderr, ``error: <message> (<code>)``, plus an exit status (see
``output.ExitCode``); with ``--output json`` stdout also gets ``{"error": {...}}``. No traceback is
shown for a snapferry error; an unexpected exception shows one only when ``SNAPFERRY_DEBUG=1``.
"""

from __future__ import annotations

import importlib
import os
import traceback
from collections.abc import Callable
from typing import Any

import click

from snapferry.cli import output as out
from snapferry.cli.output import ExitCode
from snapferry.errors import Conflict, InvalidInput, NotFound, RegionBusy, SnapferryError

DEBUG_ENV = "SNAPFERRY_DEBUG"
_USER_ERRORS = (InvalidInput, NotFound, Conflict)


def exit_code(exc: SnapferryError) -> ExitCode:
    """The exit status of a snapferry error: the caller's mistakes are USAGE, a held region is
    BUSY, anything else (corrupt or unreachable storage) is FAILURE."""
    if isinstance(exc, RegionBusy):
        return ExitCode.BUSY
    if isinstance(exc, _USER_ERRORS):
        return ExitCode.USAGE
    return ExitCode.FAILURE


def _hint(exc: SnapferryError) -> str | None:
    if isinstance(exc, RegionBusy):
        return "another process holds the region"
    return None


def _request_id(exc: SnapferryError) -> str | None:
    found = exc.details.get("requestId")
    return str(found) if found else None


def _os_message(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or type(exc).__name__}{where}"


def _found(where: str) -> click.Command:
    module, _, name = where.partition(":")
    command = getattr(importlib.import_module(module), name)
    assert isinstance(command, click.Command), where
    return command


def _with(group: str, *more: str) -> Callable[[], click.Command]:
    """The group at ``group`` with the commands at ``more`` added (defined elsewhere)."""

    def load() -> click.Command:
        found = _found(group)
        assert isinstance(found, click.Group), group
        for where in more:
            found.add_command(_found(where))
        return found

    return load


LAZY: dict[str, Callable[[], click.Command]] = {
    "up": lambda: _found("snapferry.cli.servers:up"),
    "serve": lambda: _found("snapferry.cli.servers:serve"),
    "group": lambda: _found("snapferry.cli.groups:group_command"),
    "disk": _with(
        "snapferry.cli.resources:disk_command",
        "snapferry.cli.transfer:disk_import",
        "snapferry.cli.transfer:disk_export",
    ),
    "snapshot": _with(
        "snapferry.cli.resources:snapshot_command",
        "snapferry.cli.transfer:snapshot_export",
        "snapferry.cli.transfer:snapshot_diff",
        "snapferry.cli.copies:snapshot_copy",
    ),
    "copy": lambda: _found("snapferry.cli.copies:copy_command"),
    "token": lambda: _found("snapferry.cli.tokens:token_command"),
    "scrub": lambda: _found("snapferry.cli.admin:scrub_command"),
    "gc": lambda: _found("snapferry.cli.admin:gc_command"),
    "compact": lambda: _found("snapferry.cli.admin:compact_command"),
    "repair": lambda: _found("snapferry.cli.admin:repair_command"),
    "demo": lambda: _found("snapferry.cli.admin:demo_command"),
}
"""Every command of ``snapferry``, by name: what imports it."""


class AdminGroup(click.Group):
    """A click group that turns every error of its commands into a message and an exit status,
    its commands imported only when named (``LAZY``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*LAZY, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY:
            self.add_command(LAZY[cmd_name](), cmd_name)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except click.ClickException as exc:
            if out.current_format(ctx) == "json":
                out.write_json({"error": {"code": "UsageError", "message": exc.format_message()}})
            raise
        except SnapferryError as exc:
            status = exc.details.get("status")
            out.error(
                out.current_format(ctx),
                exc.code,
                exc.message,
                _hint(exc),
                request_id=_request_id(exc),
                server_fault=isinstance(status, int) and status >= 500,
            )
            raise click.exceptions.Exit(exit_code(exc)) from None
        except KeyboardInterrupt:
            out.error(out.current_format(ctx), "Interrupted", "interrupted")
            raise click.exceptions.Exit(130) from None
        except OSError as exc:
            out.error(out.current_format(ctx), "OSError", _os_message(exc))
            raise click.exceptions.Exit(ExitCode.FAILURE) from None
        except Exception as exc:
            # Only the type: the text of an arbitrary exception (a SQL statement, a URL) may
            # carry data that must not be printed.
            debug = os.environ.get(DEBUG_ENV) == "1"
            if debug:
                traceback.print_exc()
            how = "" if debug else f" (set {DEBUG_ENV}=1 to see it)"
            message = f"unexpected {type(exc).__name__}; this is a bug{how}"
            out.error(out.current_format(ctx), "InternalError", message)
            raise click.exceptions.Exit(ExitCode.FAILURE) from None


@click.group(cls=AdminGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="snapferry", prog_name="snapferry")
def cli() -> None:
    """snapferry: disks, incremental snapshots and exact diffs behind the Azure Resource Manager
    API.

    \b
    Run a cloud:        snapferry up            (front door + regions, until Ctrl-C)
    Use it:             snapferry group|disk|snapshot|copy|token ...  (reads cloud.json)
    Administer a region at rest: snapferry scrub|gc|compact

    \b
    Exit status: 0 done, 1 problems found, 2 bad request or nothing there,
    3 another process holds the region, 4 could not finish.
    """


def main() -> None:
    """Entry point of the ``snapferry`` console script (exits the process)."""
    cli.main(prog_name="snapferry")


if __name__ == "__main__":
    main()
