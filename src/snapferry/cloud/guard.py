"""Every listener's guard against clients that hold connections without using them: uvicorn's
httptools protocol with the time limits and the connection cap a public server needs.

- A request head must arrive within ``head_timeout`` of the connection (or of the request's
  first byte); a body may not stall — no byte for ``body_timeout`` while the server is reading;
  an answer may not wait on a client that accepts no byte for ``write_timeout``; a connection
  idle between requests closes after ``keep_alive`` (uvicorn's own timer). A connection that
  breaks a limit is closed at once, without a log line: it is the client's doing.
- At most ``max_connections`` per listener. A new connection past it takes the place of the
  oldest one still waiting for its first request's head; if there is none, the new one is
  closed. Either way one line is logged per minute, not one per connection. (A connection
  that has been answered — the front door's kept-alive links to its regions among them — is
  never taken for a newcomer: it closes when idle for ``keep_alive``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from snapferry.throttled import Throttled

log = logging.getLogger("snapferry.cloud")
RESERVED_FILES = 256
"""File descriptors kept for databases, stored packs and calls to other regions."""


@dataclass(frozen=True)
class Limits:
    """What a listener allows a connection (seconds) and how many connections it holds."""

    head_timeout: float = 10.0
    body_timeout: float = 30.0
    write_timeout: float = 60.0
    keep_alive: float = 5.0
    max_connections: int = 0
    """0: worked out from the process's file limit (``connection_budget``)."""


def raise_file_limit(wanted: int = 65536) -> int:
    """Raise this process's soft limit on open files toward its hard limit; the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return int(soft)


def connection_budget(listeners: int, files: int) -> int:
    """Connections each of ``listeners`` may hold so that together they stay within ``files``
    open files (``RESERVED_FILES`` kept for the rest), at most 4,096."""
    return max(16, min(4096, (files - RESERVED_FILES) // max(1, listeners)))


THROTTLED = Throttled(log)


class _WatchedFlow(FlowControl):
    """uvicorn's write flow control, closing the connection when the client has accepted no
    byte for ``timeout`` seconds while an answer waits to be written."""

    def __init__(self, transport: asyncio.Transport, timeout: float) -> None:
        super().__init__(transport)
        self._timeout = timeout
        self._timer: asyncio.TimerHandle | None = None

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._timeout, self._transport.abort)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol under ``limits`` (set on a subclass per listener: see
    ``guarded``)."""

    limits: ClassVar[Limits] = Limits()
    listener: ClassVar[str] = "listener"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False
        self._serving = False
        self._answered = 0
        self._opened = time.monotonic()
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    # --- connections ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if not self._admit():
            self._refused = True
            transport.abort()
            return
        super().connection_made(transport)
        self.flow = _WatchedFlow(transport, self.limits.write_timeout)
        self._head_timer = self.loop.call_later(self.limits.head_timeout, self._too_slow)

    def _admit(self) -> bool:
        """Room for one more connection: free, or made by closing the oldest one still waiting
        for its first request's head. False if there is none."""
        cap = self.limits.max_connections
        held = self.connections
        if len(held) < cap:
            return True
        idle = [
            c for c in held if isinstance(c, GuardedHttp) and not c._serving and not c._answered
        ]
        if not idle:
            THROTTLED.warn(
                f"full:{self.listener}",
                "%s: %d connections, none waiting for a first request: new connections are "
                "closed (raise [http] max_connections or the file limit)",
                self.listener,
                len(held),
            )
            return False
        oldest = min(idle, key=lambda c: c._opened)
        oldest.transport.abort()
        held.discard(oldest)
        THROTTLED.warn(
            f"evict:{self.listener}",
            "%s: at its %d connections: closing the oldest that has asked nothing yet for "
            "each new one (many clients connecting without asking anything?)",
            self.listener,
            cap,
        )
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._stop_timers()
        super().connection_lost(exc)

    def _stop_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _too_slow(self) -> None:
        """A limit passed: close the connection (whatever it was sending is dropped)."""
        self._stop_timers()
        self.transport.abort()

    # --- requests -------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.head_timeout, self._too_slow)

    def on_headers_complete(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._serving = True
        super().on_headers_complete()
        self._watch_body()

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._watch_body()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _watch_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
        self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_stalled)

    def _body_stalled(self) -> None:
        self._body_timer = None
        if self.flow is not None and self.flow.read_paused:  # we stopped reading, not them
            self._watch_body()
            return
        self._too_slow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._serving = False
        self._answered += 1


def guarded(limits: Limits, listener: str) -> type[GuardedHttp]:
    """The protocol class for one listener (uvicorn's ``http=``)."""
    return type("GuardedHttp", (GuardedHttp,), {"limits": limits, "listener": listener})


def quiet_exhaustion(loop: asyncio.AbstractEventLoop) -> None:
    """Log the loop's "out of system resource" errors (accept() failing for want of file
    descriptors: the loop retries a second later) as one line a minute, not a traceback each."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if "out of system resource" in message:
            THROTTLED.warn("files", "%s: %s", message, context.get("exception"))
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
