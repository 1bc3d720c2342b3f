"""Prometheus metrics (prometheus-client): what a region or the front door counts, each in a
registry of its own (one process may host several regions), served as text on ``/metrics``.

Labels name routes, calls, states and error codes — never a subscription, a resource or a grant,
so the page may be scraped without credentials. Counters count what this process did since it
started (Prometheus' ``rate()`` handles restarts); the copies-by-state gauge is read from the
region's database at each scrape, so it is the same in every process of a region.
``docs/observability.md`` lists every metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from typing import ClassVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client import generate_latest as _generate
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# No ``*_created`` series: a scraper knows when a process started.
disable_created_metrics()  # type: ignore[no-untyped-call]
CONTENT_TYPE = CONTENT_TYPE_LATEST
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
"""Seconds: from a cached read (a millisecond) to a whole-disk download."""
COPY_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400)
"""Seconds: from a small delta to a first copy of a large disk."""


def new_registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus' text format (``CONTENT_TYPE``)."""
    return _generate(registry)


class HttpMetrics:
    """Requests answered by one server (a region's ARM, data-plane and peer routes, or the front
    door), by route template (``/subscriptions/{subscriptionId}/…``, or the data-plane operation
    such as ``blob:PutPage``), method and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "snapferry_http_requests",
            "HTTP requests answered, by route, method and status code.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "snapferry_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route and method.",
            ["route", "method"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.seconds.labels(route, method).observe(seconds)


class DataPlaneMetrics:
    """What a region's data plane does beyond answering requests."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.page_write_groups = Histogram(
            "snapferry_page_write_group_size",
            "Put Pages of one disk made durable together (one group commit).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=registry,
        )


class ScrubMetrics:
    """What a region's last scheduled scrub found (``control.schedules``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.problems = Gauge(
            "snapferry_scrub_problems",
            "Stored versions the last scrub found corrupt, missing or dangling.",
            registry=registry,
        )
        self.ended = Gauge(
            "snapferry_scrub_last_end_timestamp_seconds",
            "When the last scrub ended (Unix time).",
            registry=registry,
        )
        self.bytes_read = Gauge(
            "snapferry_scrub_bytes_read",
            "Bytes of packs the last scrub read and verified.",
            registry=registry,
        )
        self.zone_damage = Gauge(
            "snapferry_scrub_zone_damage",
            "Objects whose copy in some zone the last scrub found missing or corrupt while "
            "another zone's verified (mended; no problem for readers).",
            registry=registry,
        )

    def observe(self, state: Mapping[str, float]) -> None:
        self.problems.set(state.get("problems", 0))
        self.ended.set(state.get("lastEndedAt", 0))
        self.bytes_read.set(state.get("bytesRead", 0))
        self.zone_damage.set(state.get("zoneDamage", 0))


class ZoneRepairMetrics:
    """What a region's last scheduled zone repair did (``control.schedules``)."""

    FIELDS: ClassVar[dict[str, str]] = {
        "copied_packs": "Packs the last zone repair copied into zones that lacked them.",
        "removed_objects": "Objects the last zone repair removed from zones (named by no pack).",
        "failed_packs": "Packs the last zone repair could not copy (a zone unreachable).",
        "lost_packs": "Packs kept in one zone alone (LRS) that their zone no longer holds.",
    }

    def __init__(self, registry: CollectorRegistry) -> None:
        self.gauges = {
            key: Gauge(f"snapferry_zone_repair_{key}", doc, registry=registry)
            for key, doc in self.FIELDS.items()
        }
        self.ended = Gauge(
            "snapferry_zone_repair_last_end_timestamp_seconds",
            "When the last zone repair ended (Unix time).",
            registry=registry,
        )

    def observe(self, state: Mapping[str, float]) -> None:
        for key, gauge in self.gauges.items():
            gauge.set(state.get(key, 0))
        self.ended.set(state.get("lastEndedAt", 0))


class PeerMetrics:
    """Calls to other regions (the front door's to regions, or a region's to its peers)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.seconds = Histogram(
            "snapferry_peer_request_duration_seconds",
            "Time of each call to another region, by region, call and outcome (ok: it "
            "answered below 400; refused: it answered 400 or above; unreachable: no answer).",
            ["region", "call", "outcome"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )

    @contextlib.contextmanager
    def timing(self, region: str, call: str) -> Iterator[Callable[[int], None]]:
        """Time the call in the block, which tells the answer's status to the function it is
        given; no status told and an exception means the region did not answer (a cancelled
        call says nothing about the region and is not counted)."""
        started = time.monotonic()
        status: list[int] = []
        try:
            yield status.append
        except asyncio.CancelledError:
            raise
        except BaseException:
            if not status:
                self._observe(region, call, "unreachable", started)
            raise
        if status:
            self._observe(region, call, "ok" if status[-1] < 400 else "refused", started)

    def _observe(self, region: str, call: str, outcome: str, started: float) -> None:
        self.seconds.labels(region, call, outcome).observe(time.monotonic() - started)


class CopyMetrics:
    """What the copy worker of a region did: bytes, ends, retries, stalls, takeovers."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.transferred = Counter(
            "snapferry_copy_transferred_bytes",
            "Bytes copies into this region received from source regions, as they travelled "
            "(compressed).",
            registry=registry,
        )
        self.copied = Counter(
            "snapferry_copy_copied_bytes",
            "Bytes of snapshot content copies into this region committed (uncompressed).",
            registry=registry,
        )
        self.duration = Histogram(
            "snapferry_copy_duration_seconds",
            "Time from a copy's first attempt to its end, by result (Succeeded or Failed).",
            ["result"],
            buckets=COPY_BUCKETS,
            registry=registry,
        )
        self.retries = Counter(
            "snapferry_copy_retries",
            "Copy attempts that failed and were queued to run again, by the error's code.",
            ["reason"],
            registry=registry,
        )
        self.stalls = Counter(
            "snapferry_copy_stalls",
            "Copies found stalled (no byte moved for the region's copy_stall_seconds); each "
            "stall of a copy counts once.",
            registry=registry,
        )
        self.takeovers = Counter(
            "snapferry_copy_takeovers",
            "Copy attempts resumed after the attempt before stopped without finishing (its "
            "process died or its lease ran out).",
            registry=registry,
        )


class CopyStates(Collector):
    """``snapferry_copies{state}``: the copies into a region by state, read at each scrape."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "snapferry_copies",
            "Copies into this region by state (Queued, Copying, Stalled, Succeeded, Failed), "
            "deleted targets not counted.",
            labels=["state"],
        )
        for state, count in sorted(self.counts().items()):
            gauge.add_metric([state], count)
        yield gauge

    def describe(self) -> Iterator[Metric]:
        return iter(())  # read at scrape time only: registering must not query the database
