"""Running the ``snapferry`` CLI in a pseudo-terminal, as a user at a terminal does, for tests
of what it draws there (progress bars)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import threading
import time
from concurrent.futures import Future


def in_a_terminal(
    env: dict[str, str],
    args: list[str],
    *,
    timeout: float = 180.0,
    drawn: threading.Event | None = None,
) -> Future[tuple[int, str]]:
    """Start ``snapferry ARGS`` with a pseudo-terminal as its stdin, stdout and stderr; its exit
    status and everything it wrote there, once it ends (killed after ``timeout``). ``drawn`` is
    set once it has written anything."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "snapferry.cli.main", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"},
        close_fds=True,
    )
    os.close(follower)
    done: Future[tuple[int, str]] = Future()

    def read() -> None:
        screen = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not select.select([leader], [], [], 0.5)[0]:
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            screen += chunk
            if drawn is not None:
                drawn.set()
        os.close(leader)
        try:
            status = proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            status = proc.wait()
        done.set_result((status, screen.decode(errors="replace")))

    threading.Thread(target=read, daemon=True).start()
    return done
