"""Admin commands over one local region: ``scrub``, ``gc``, ``compact``, ``repair`` and ``demo``.

Each command resolves the region's data directory, runs one engine pass there — or has the running
region that holds it run the pass (``passes``) — and renders the result (see ``output``). None of
them creates a region: a directory without ``meta.db`` is an error. The data directory is, first
match wins: ``--data-dir``, then ``$SNAPFERRY_DATA_DIR``, then ``regions/<region>`` under the
cloud's data directory (``$SNAPFERRY_HOME``, else ``$XDG_DATA_HOME/snapferry``) — without
``--region``, the only region there (several: the command asks which).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import RenderableType

from snapferry.cli import demo
from snapferry.cli import output as out
from snapferry.cli.output import ExitCode
from snapferry.cli.passes import DATA_DIR_ENV, run_pass
from snapferry.engine import Engine
from snapferry.engine.compact import DEFAULT_COVERAGE, DEFAULT_MAX_DEPTH, CompactReport, compact
from snapferry.engine.gc import DEFAULT_GRACE, GcReport, collect
from snapferry.engine.scrub import Problem, ScrubReport
from snapferry.engine.scrub import scrub as run_scrub
from snapferry.engine.zones import ZoneRepairReport, repair
from snapferry.errors import InvalidInput, NotFound
from snapferry.settings import default_data_dir as settings_data_dir

_REGION_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")

F = TypeVar("F", bound=Callable[..., Any])


# --- where the region lives ------------------------------------------------------------------
def default_data_dir(region: str) -> Path:
    """``$XDG_DATA_HOME/snapferry/regions/<region>``, XDG_DATA_HOME defaulting to
    ``~/.local/share``."""
    return settings_data_dir() / "regions" / region


def _check_region(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _REGION_NAME.fullmatch(value):
        raise click.BadParameter("use lowercase letters, digits and '-' (at most 63)")
    return value


def region_options(f: F) -> F:
    """``--data-dir``, ``--region`` and ``--output``; the command receives ``data_dir`` (a
    resolved Path), ``region`` and ``output``."""
    f = click.option(
        "--region",
        callback=_check_region,
        help="Region name; only picks the default data directory. [default: the only region "
        "under the cloud's data directory]",
    )(f)
    f = click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        envvar=DATA_DIR_ENV,
        show_envvar=True,
        help="The region's data directory. [default: regions/<region> under $SNAPFERRY_HOME or "
        "$XDG_DATA_HOME/snapferry]",
    )(f)
    return out.output_option(f)


def resolve_data_dir(data_dir: Path | None, region: str | None) -> Path:
    """The directory a command works on: data_dir if given, else the region's default, else
    the only region under the cloud's data directory (InvalidInput if there are several)."""
    if data_dir is not None:
        return data_dir.expanduser()
    if region is not None:
        return default_data_dir(region)
    regions = settings_data_dir() / "regions"
    found = sorted(p.name for p in regions.glob("*") if (p / "meta.db").is_file())
    if len(found) > 1:
        raise InvalidInput(
            f"{regions} holds several regions: pass --region ({', '.join(found)}) or --data-dir"
        )
    if not found:
        raise NotFound(
            f"no region under {regions}; start the cloud (`snapferry up`), or pass --data-dir "
            f"or set {DATA_DIR_ENV}",
            data_dir=str(regions),
        )
    return regions / found[0]


# --- scrub -----------------------------------------------------------------------------------
@click.command("scrub")
@region_options
@click.pass_context
def scrub_command(
    ctx: click.Context, data_dir: Path | None, region: str | None, output: str
) -> None:
    """Re-read every stored object and report what is corrupt or missing.

    Exit status 0 when clean, 1 when problems were found. A progress bar is drawn on stderr when
    stderr is a terminal."""
    path = resolve_data_dir(data_dir, region)
    stderr_tty = sys.stderr.isatty()
    with out.progress_bar("scrub", stderr_tty) as progress:
        found = run_pass(path, "scrub", {}, lambda e, p: run_scrub(e, p).to_dict(), progress)
    found.pop("clean", None)
    report = ScrubReport(
        **{**found, "problems": [Problem(**problem) for problem in found.get("problems", [])]}
    )
    doc = {"data_dir": str(path), **report.to_dict()}
    out.emit(output, doc, lambda: _scrub_view(path, report))
    ctx.exit(ExitCode.OK if report.clean else ExitCode.PROBLEMS)


def _scrub_view(path: Path, report: ScrubReport) -> Iterable[RenderableType]:
    yield out.kv_table(
        f"scrub of {path}",
        [
            ("packs read", report.packs),
            ("objects verified", report.objects),
            ("bytes read", out.size(report.bytes_read)),
            ("problems", len(report.problems)),
            *(
                [("zone copies damaged (mended)", _per_zone(report.zone_damage))]
                if report.zone_damage
                else []
            ),
        ],
    )
    if report.clean:
        yield out.line("clean: every referenced object verified", "bold green")
        return
    yield out.grid_table(
        "problems",
        ("kind", "resource", "id", "offset", "detail"),
        [(p.kind, p.resource, p.id, p.offset, p.detail) for p in report.problems],
    )
    yield out.line(f"{len(report.problems)} problem(s) found", "bold red")


# --- gc --------------------------------------------------------------------------------------
@click.command("gc")
@region_options
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=DEFAULT_GRACE,
    show_default=True,
    metavar="SECONDS",
    help="Delete unreferenced packs only after they have been dead this long.",
)
@click.option(
    "--repack-below",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    metavar="FRACTION",
    help="Repack packs whose live bytes fall below this fraction of their size.",
)
def gc_command(
    data_dir: Path | None, region: str | None, output: str, grace: float, repack_below: float
) -> None:
    """Delete unreferenced packs and repack sparse ones. Safe to interrupt and repeat."""
    path = resolve_data_dir(data_dir, region)
    params = {"grace": str(grace), "repackBelow": str(repack_below)}
    report = GcReport(
        **run_pass(
            path,
            "gc",
            params,
            lambda e, _: collect(e, grace_seconds=grace, repack_below=repack_below).to_dict(),
        )
    )
    doc = {"data_dir": str(path), "grace_seconds": grace, "repack_below": repack_below}
    out.emit(output, doc | report.to_dict(), lambda: [_gc_table(path, report)])


def _gc_table(path: Path, report: GcReport) -> RenderableType:
    return out.kv_table(
        f"gc of {path}",
        [
            ("packs examined", report.packs),
            ("live bytes", out.size(report.live_bytes)),
            ("packs marked dead", report.marked_dead),
            ("packs deleted", f"{report.deleted} ({out.size(report.deleted_bytes)})"),
            ("packs repacked", f"{report.repacked} (into {out.size(report.repacked_bytes)})"),
            ("corrupt packs skipped", f"{report.skipped_corrupt} (run `snapferry scrub`)"),
        ],
    )


# --- compact ---------------------------------------------------------------------------------
@click.command("compact")
@region_options
@click.option(
    "--max-depth",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_DEPTH,
    show_default=True,
    help="Rewrite a patch as a full version when its chain is deeper than this.",
)
@click.option(
    "--coverage",
    type=click.FloatRange(0, 1),
    default=DEFAULT_COVERAGE,
    show_default=True,
    help="...or when it already covers at least this fraction of its chunk.",
)
def compact_command(
    data_dir: Path | None, region: str | None, output: str, max_depth: int, coverage: float
) -> None:
    """Rewrite long patch chains as full versions, so reads stay fast. Diffs do not change."""
    path = resolve_data_dir(data_dir, region)
    params = {"maxDepth": str(max_depth), "coverage": str(coverage)}
    report = CompactReport(
        **run_pass(
            path,
            "compact",
            params,
            lambda e, _: compact(e, max_depth=max_depth, coverage=coverage).to_dict(),
        )
    )
    doc = {"data_dir": str(path), "max_depth": max_depth, "coverage": coverage}
    out.emit(output, doc | report.to_dict(), lambda: [_compact_table(path, report)])


def _compact_table(path: Path, report: CompactReport) -> RenderableType:
    return out.kv_table(
        f"compact of {path}",
        [
            ("snapshots examined", report.snapshots),
            ("patches rewritten as full versions", report.compacted),
        ],
    )


# --- repair --------------------------------------------------------------------------------
@click.command("repair")
@region_options
@click.pass_context
def repair_command(
    ctx: click.Context, data_dir: Path | None, region: str | None, output: str
) -> None:
    """Bring a region's zones back to holding every pack: copy into each zone what it misses
    (a lost or replaced zone), remove what it kept that nothing names. A region without zones
    has nothing to repair.

    Exit status 0 when every zone holds every pack, 1 when some could not be copied (a zone
    still unreachable) or a pack kept in one zone alone (LRS) is gone with it. A progress bar
    is drawn on stderr when stderr is a terminal."""
    path = resolve_data_dir(data_dir, region)
    with out.progress_bar("repair", sys.stderr.isatty()) as progress:
        found = run_pass(path, "repair", {}, lambda e, p: repair(e, p).to_dict(), progress)
    report = ZoneRepairReport(
        **{
            k: found[k]
            for k in ("zones", "packs", "copied", "bytes_copied", "removed", "failed", "lost")
        }
    )
    doc = {"data_dir": str(path), **report.to_dict()}
    out.emit(output, doc, lambda: [_repair_table(path, report)])
    ctx.exit(ExitCode.OK if report.clean else ExitCode.PROBLEMS)


def _repair_table(path: Path, report: ZoneRepairReport) -> RenderableType:
    if not report.zones:
        return out.kv_table(f"zone repair of {path}", [("zones", "none: nothing to repair")])
    return out.kv_table(
        f"zone repair of {path}",
        [
            ("zones", ", ".join(report.zones)),
            ("live packs", report.packs),
            ("packs copied", f"{_per_zone(report.copied)} ({out.size(report.bytes_copied)})"),
            ("stray objects removed", _per_zone(report.removed)),
            ("packs not copied", _per_zone(report.failed)),
            ("LRS packs lost with their zone", _per_zone(report.lost)),
        ],
    )


def _per_zone(counts: dict[str, int]) -> str:
    """``3 (zone 1: 2, zone 3: 1)``, or ``0``."""
    total = sum(counts.values())
    if not total:
        return "0"
    return f"{total} (" + ", ".join(f"zone {z}: {n}" for z, n in sorted(counts.items())) + ")"


# --- demo ------------------------------------------------------------------------------------
@click.command("demo")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    help="A new or empty directory for the demo region. [default: a fresh temporary directory]",
)
@out.output_option
@click.pass_context
def demo_command(ctx: click.Context, data_dir: Path | None, output: str) -> None:
    """Show the engine at work in a throwaway region: snapshots, an exact diff, a restore.

    Never touches an existing region; the directory is kept so you can look at it. Exit status 1
    if a check the demo makes fails."""
    path = demo.fresh_dir(data_dir)
    with Engine.open(path) as engine:
        result = demo.run(engine, path)
    out.emit(output, result.to_dict(), lambda: demo.view(result))
    ctx.exit(ExitCode.OK if result.passed else ExitCode.PROBLEMS)
