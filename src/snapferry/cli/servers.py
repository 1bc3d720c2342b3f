"""``snapferry up`` (the whole cloud in one process) and ``snapferry serve region|frontdoor``
(one part each, for several hosts)."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import click

from snapferry.cloud import host, logs
from snapferry.cloud.config import CloudConfig, load
from snapferry.settings import default_data_dir

CONFIG = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML file of regions and listen addresses (default: eastus with zones, westus).",
)
DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the cloud keeps its data [default: $SNAPFERRY_HOME or ~/.local/share/snapferry].",
)


LOG_FORMAT = click.option(
    "--log-format",
    type=click.Choice(logs.FORMATS),
    default="text",
    show_default=True,
    envvar="SNAPFERRY_LOG_FORMAT",
    help="The log on stderr: readable lines, or one JSON object per line.",
)
LOG_LEVEL = click.option(
    "--log-level",
    type=click.Choice(logs.LEVELS),
    default="info",
    show_default=True,
    envvar="SNAPFERRY_LOG_LEVEL",
    help="debug adds a line per request answered below 400.",
)
_log = logging.getLogger("snapferry.cloud")


def _start_logging(log_format: str, log_level: str) -> None:
    logs.configure(log_format, log_level)
    click.get_current_context().meta["snapferry.log_format"] = log_format


def _say(text: str) -> None:
    """Tell the operator (a log line when the log is JSON: stderr stays one object a line)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get("snapferry.log_format") == "json":
        _log.info("%s", text)
        return
    click.echo(text, err=True)
    sys.stderr.flush()


@click.command()
@DATA_DIR
@click.option("--port", type=click.IntRange(0, 65535), help="Front door port [default: 7780].")
@CONFIG
@LOG_FORMAT
@LOG_LEVEL
def up(
    data_dir: Path | None,
    port: int | None,
    config_file: Path | None,
    log_format: str,
    log_level: str,
) -> None:
    """Run the front door and every region in this process until Ctrl-C.

    When ready, writes DATA_DIR/cloud.json (endpoint, admin token, subscription, regions,
    metrics URLs) and prints how to connect.
    """
    _start_logging(log_format, log_level)
    config = load(config_file, data_dir=data_dir, port=port)
    hosted = host.Hosted()
    try:
        write_cloud_json = host.open_cloud(config, hosted)
        asyncio.run(host.serve(hosted, lambda: _announce(config, write_cloud_json()), config.http))
    finally:
        hosted.close()
    _say("snapferry stopped; every acknowledged change is on disk")


def _announce(config: CloudConfig, cloud: dict[str, Any]) -> None:
    where = config.data_dir / "cloud.json"
    cli = "snapferry disk list"
    if config.data_dir != default_data_dir().absolute():
        cli = f"snapferry disk list --data-dir {config.data_dir}"
    _say(
        f"snapferry is up at {cloud['endpoint']} with regions "
        f"{', '.join(str(r) for r in cloud['regions'])}\n"
        f"  credentials: {where}  (subscription {cloud['subscription']})\n"
        f"  CLI:         {cli}\n"
        f"  Python SDK:  from snapferry.sdk import compute_client; "
        f"client = compute_client({str(where)!r})\n"
        "Stop with Ctrl-C."
    )


@click.group()
def serve() -> None:
    """Run one part of a cloud spread over several hosts."""


@serve.command("region")
@CONFIG
@click.option("--name", help="Which [[regions]] entry to serve (needed if there are several).")
@DATA_DIR
@LOG_FORMAT
@LOG_LEVEL
def serve_region(
    config_file: Path, name: str | None, data_dir: Path | None, log_format: str, log_level: str
) -> None:
    """Serve one region's API. Its listen address is the region's `listen`."""
    _start_logging(log_format, log_level)
    config = load(config_file, data_dir=data_dir)
    region = config.region(name)
    hosted = host.Hosted()
    try:
        url = host.open_region(
            region,
            config.data_dir,
            host.frontdoor_key(config),
            hosted,
            host.Peering.configured(config),
        )

        def ready() -> None:
            _say(f"region {region.name} serving at {url}")

        asyncio.run(host.serve(hosted, ready, config.http))
    finally:
        hosted.close()


@serve.command("frontdoor")
@CONFIG
@DATA_DIR
@click.option("--port", type=click.IntRange(0, 65535), help="Front door port.")
@LOG_FORMAT
@LOG_LEVEL
def serve_frontdoor(
    config_file: Path, data_dir: Path | None, port: int | None, log_format: str, log_level: str
) -> None:
    """Serve the front door over regions at their configured `url`s; writes cloud.json."""
    _start_logging(log_format, log_level)
    config = load(config_file, data_dir=data_dir, port=port)
    missing = [r.name for r in config.regions if not r.url]
    if missing:
        raise click.UsageError(f"regions without a url: {', '.join(missing)}")
    regions = {r.name: str(r.url) for r in config.regions}
    hosted = host.Hosted()
    try:
        endpoint, registry = host.open_frontdoor(
            config, regions, host.frontdoor_key(config), hosted
        )

        def ready() -> None:
            _announce(config, host.write_cloud_json(config, endpoint, registry, regions))

        asyncio.run(host.serve(hosted, ready, config.http))
    finally:
        hosted.close()
