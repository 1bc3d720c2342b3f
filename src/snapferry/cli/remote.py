"""What every command that talks to a running cloud shares: the connection options, the client,
progress while an operation takes long, ``--tags`` and delete confirmation.

The cloud is found as ``snapferry.client.resolve_cloud`` says: ``--endpoint``/``--token``/
``--subscription``, then ``$SNAPFERRY_ENDPOINT``/``$SNAPFERRY_TOKEN``/``$SNAPFERRY_SUBSCRIPTION``,
then ``cloud.json`` in ``--data-dir`` (default ``settings.default_data_dir()``).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.status import Status

from snapferry.cli import output as out
from snapferry.client import Client, Cloud, ResourceMissing, resolve_cloud

QUIET_SECONDS = 1.0
"""An operation shorter than this shows no progress at all."""
LINE_EVERY = 30.0
"""Without a terminal, a 'still waiting' line is written this often."""

GROUP = click.option(
    "--resource-group", "-g", "group", required=True, help="Name of the resource group."
)
NAME = click.option("--name", "-n", required=True, help="Name of the resource.")
YES = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


@dataclass(frozen=True)
class Remote:
    """A command's view of the cloud: where it is and how to print results."""

    cloud: Cloud
    output: str

    @contextmanager
    def client(self, group: str | None = None, location: str | None = None) -> Iterator[Client]:
        """A Client showing progress on stderr, closed on exit. A missing resource group
        becomes an error saying how to create it (in location, default the cloud's first)."""
        progress = Progress()
        try:
            with Client(self.cloud, progress=progress) as client:
                yield client
        except ResourceMissing as exc:
            if exc.code != "ResourceGroupNotFound" or group is None:
                raise
            where = location or self.cloud.default_location
            raise ResourceMissing(
                f"resource group {group} does not exist: create it with "
                f"`snapferry group create -g {group} -l {where}`",
                code=exc.code,
                status=exc.status,
            ) from None
        finally:
            progress.close()


def remote_command(
    subscription_help: str = "Subscription to work in.",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator adding ``--endpoint``, ``--token``, ``--subscription``, ``--data-dir`` and
    ``--output``; the command receives a resolved ``Remote`` as its first argument instead.
    The cloud is resolved only once every option has been parsed."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def run(
            *args: Any,
            endpoint: str | None,
            token: str | None,
            subscription: str | None,
            data_dir: Path | None,
            output: str,
            **kwargs: Any,
        ) -> Any:
            cloud = resolve_cloud(endpoint, token, subscription, data_dir)
            return f(Remote(cloud, output), *args, **kwargs)

        for option in reversed(_connection_options(subscription_help)):
            run = option(run)
        return run

    return decorate


def _connection_options(subscription_help: str) -> list[Callable[[Any], Any]]:
    return [
        click.option(
            "--endpoint",
            metavar="URL",
            help="The cloud's URL. [default: $SNAPFERRY_ENDPOINT, else cloud.json's]",
        ),
        click.option(
            "--token",
            metavar="TOKEN",
            help="Bearer token (prefer $SNAPFERRY_TOKEN: flags show in `ps`). "
            "[default: $SNAPFERRY_TOKEN, else cloud.json's]",
        ),
        click.option(
            "--subscription",
            metavar="ID",
            help=f"{subscription_help} [default: $SNAPFERRY_SUBSCRIPTION, else cloud.json's]",
        ),
        click.option(
            "--data-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Where to find cloud.json. [default: $SNAPFERRY_HOME or ~/.local/share/snapferry]",
        ),
        out.output_option,
    ]


class Progress:
    """Tells the user an operation is taking long: a spinner on stderr when it is a terminal,
    else a line every LINE_EVERY seconds. Silent for operations under QUIET_SECONDS."""

    def __init__(self) -> None:
        self.console = Console(stderr=True, highlight=False)
        self.status: Status | None = None
        self.next_line = LINE_EVERY

    def __call__(self, what: str, elapsed: float) -> None:
        if elapsed < QUIET_SECONDS:
            return
        if not self.console.is_terminal:
            if elapsed >= self.next_line:
                click.echo(f"{what}: still running after {elapsed:.0f} s", err=True)
                self.next_line += LINE_EVERY
            return
        text = f"{what} ({elapsed:.0f} s)"
        if self.status is None:
            self.status = self.console.status(text)
            self.status.start()
        else:
            self.status.update(text)

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


def _parse_tags(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str] | None:
    if not values:
        return None
    tags: dict[str, str] = {}
    for value in values:
        for pair in value.split():
            key, _, text = pair.partition("=")
            if not key:
                raise click.BadParameter(f"{pair!r} is not key=value")
            tags[key] = text
    return tags


TAGS = click.option(
    "--tags",
    multiple=True,
    callback=_parse_tags,
    metavar="KEY=VALUE",
    help="A tag; repeat the option, or give several separated by spaces in one value. "
    "'' gives no tags.",
)


def confirm(action: str, yes: bool) -> None:
    """Ask before action unless yes; without a terminal to ask on, refuse (a UsageError)."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError(f"not going to {action} without confirmation: pass --yes")
    click.confirm(f"{action}?", abort=True, err=True)
