"""Group commit of Put Pages: the writes of one disk that arrive while one of its groups is being
written wait on the event loop, then go to the data plane together, in arrival order, and share
one durability barrier (one ``fdatasync`` of the disk's overlay, one database commit) instead of
paying one each. Each write is still answered only once it is durable, with its own ETag; one
refused write (its SAS, its range, its conditions) refuses only itself.

A disk's groups are written one at a time; different disks' groups run side by side.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from snapferry.control.dataplane import Outcome, PageWrite, Properties

MAX_GROUP_BYTES = 32 * 1024 * 1024
"""At most this many body bytes go to the data plane in one group (clears count nothing)."""
MAX_GROUP_WRITES = 64

Land = Callable[[str, Sequence[PageWrite]], Awaitable[list[Outcome]]]
Waiting = tuple[PageWrite, "asyncio.Future[Properties]"]


class GroupCommit:
    """Queues each disk's Put Pages and hands them to ``land(engine_id, writes)`` (which returns
    one outcome per write, in order) a group at a time. ``observe(n)`` is told each group's
    size."""

    def __init__(self, land: Land, observe: Callable[[int], None] = lambda n: None) -> None:
        self._land = land
        self._observe = observe
        self._queues: dict[str, deque[Waiting]] = {}
        self._drains: set[asyncio.Task[None]] = set()

    async def put(self, engine_id: str, write: PageWrite) -> Properties:
        """The disk's properties once ``write`` is durable; raises what refused or failed it. A
        caller cancelled before its write joined a group leaves nothing written; after that, the
        write lands or fails with its group."""
        done: asyncio.Future[Properties] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(engine_id)
        if queue is None:
            queue = self._queues[engine_id] = deque()
            drain = asyncio.create_task(self._drain(engine_id, queue))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        queue.append((write, done))
        return await done

    async def _drain(self, engine_id: str, queue: deque[Waiting]) -> None:
        group: list[Waiting] = []
        try:
            while queue:
                group = _take(queue)
                if not group:
                    continue
                self._observe(len(group))
                try:
                    outcomes = await self._land(engine_id, [write for write, _ in group])
                except Exception as exc:  # nothing of the group landed
                    outcomes = [exc] * len(group)
                for (_, done), outcome in zip(group, outcomes, strict=True):
                    if done.done():
                        continue  # its caller went away; the write stands or fell regardless
                    if isinstance(outcome, Exception):
                        done.set_exception(outcome)
                    else:
                        done.set_result(outcome)
        finally:
            # no await between the last look at the queue and this: nothing joins it unseen
            del self._queues[engine_id]
            for _, done in [*group, *queue]:  # cancelled (a shutdown): nobody is left waiting
                if not done.done():
                    done.cancel()


def _take(queue: deque[Waiting]) -> list[Waiting]:
    """The next group: writes from the front of the queue whose callers still wait, up to
    ``MAX_GROUP_BYTES`` of bodies (at least one write) and ``MAX_GROUP_WRITES``."""
    group: list[Waiting] = []
    size = 0
    while queue and len(group) < MAX_GROUP_WRITES:
        write, done = queue[0]
        body = 0 if write.data is None else len(write.data)
        if group and size + body > MAX_GROUP_BYTES:
            break
        queue.popleft()
        if done.cancelled():
            continue
        group.append((write, done))
        size += body
    return group
