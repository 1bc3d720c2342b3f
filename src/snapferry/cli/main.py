"""The ``snapferry`` console script: the command group, ``--version`` and error translation.

Every error becomes one line on stderr, ``error: <message> (<code>)``, plus an exit status (see
``output.ExitCode``); with ``--output json`` stdout also gets ``{"error": {...}}``. No traceback is
shown for a snapferry error; an unexpected exception shows one only when ``SNAPFERRY_DEBUG=1``.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

import click

from snapferry.cli import output as out
from snapferry.cli.admin import COMMANDS
from snapferry.cli.copies import copy_command, snapshot_copy
from snapferry.cli.output import ExitCode
from snapferry.cli.resources import COMMANDS as RESOURCE_COMMANDS
from snapferry.cli.resources import disk_command, snapshot_command
from snapferry.cli.servers import COMMANDS as SERVER_COMMANDS
from snapferry.cli.transfer import DISK_COMMANDS, SNAPSHOT_COMMANDS
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


class AdminGroup(click.Group):
    """A click group that turns every error of its commands into a message and an exit status."""

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


for _command in [*COMMANDS, *SERVER_COMMANDS, *RESOURCE_COMMANDS]:
    cli.add_command(_command)
for _command in DISK_COMMANDS:
    disk_command.add_command(_command)
for _command in [*SNAPSHOT_COMMANDS, snapshot_copy]:
    snapshot_command.add_command(_command)
cli.add_command(copy_command)


def main() -> None:
    """Entry point of the ``snapferry`` console script (exits the process)."""
    cli.main(prog_name="snapferry")


if __name__ == "__main__":
    main()
