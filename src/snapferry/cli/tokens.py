"""``snapferry token create``: a new principal with one role on one subscription, and its token.

Needs the cloud's admin token (the one in cloud.json). The new token is printed once and kept
nowhere: the principal can be disabled, the token not recalled.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click
from rich.console import RenderableType

from snapferry.cli import output as out
from snapferry.cli import views
from snapferry.cli.remote import Remote, remote_command

ROLES = ("Owner", "Contributor", "Reader")
MAX_DAYS = 366


@click.group("token")
def token_command() -> None:
    """Bearer tokens for other principals (needs cloud.json's admin token)."""


@token_command.command("create")
@remote_command(subscription_help="Subscription the role is on.")
@click.option(
    "--role",
    required=True,
    type=click.Choice(ROLES, case_sensitive=False),
    help="Reader may read; Contributor and Owner may also change.",
)
@click.option("--name", help="Name of the new principal. [default: <role>-<subscription>]")
@click.option(
    "--days",
    type=click.IntRange(1, MAX_DAYS),
    default=365,
    show_default=True,
    help="How long the token is valid.",
)
def token_create(remote: Remote, role: str, name: str | None, days: int) -> None:
    """Make a principal with ROLE on the subscription and print its token.

    Use the token with SNAPFERRY_TOKEN=<token> (and SNAPFERRY_SUBSCRIPTION for another
    subscription), or in the Azure SDKs as a bearer token."""
    with remote.client() as client:
        made = client.create_principal(
            remote.cloud.subscription, role, name=name, lifetime_seconds=days * 86400
        )
    out.emit(remote.output, made, lambda: _view(made))
    if remote.output == "table":
        click.echo(str(made.get("token", "")))  # unwrapped, so that it copies whole


def _view(made: dict[str, Any]) -> Iterable[RenderableType]:
    yield out.kv_table(
        f"principal {made.get('name', '')}",
        [
            ("principal id", made.get("principalId", "")),
            ("tenant", made.get("tenantId", "")),
            ("subscription", made.get("subscription", "")),
            ("role", made.get("role", "")),
            ("expires", views.when(made.get("expiresOn"))),
        ],
    )
    yield out.line("token (shown only this once):")
