"""Group commit of Put Pages: ``DataPlane.put_pages`` lands a group as if its writes came one
after another (each judged by what the ones before it left, each refused alone), and
``GroupCommit`` forms the groups from the writes that arrive while one lands."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from snapferry.api.commits import MAX_GROUP_BYTES, GroupCommit
from snapferry.control import blob_errors as err
from snapferry.control.access import SasRefused, Signer
from snapferry.control.creation import Region
from snapferry.control.dataplane import DataPlane, Outcome, PageWrite, Properties
from snapferry.control.ids import ResourceId
from snapferry.control.service import RegionService
from snapferry.engine import Engine

PAGE = 4096
SIZE = 32 * 1024 * 1024
DISK = {
    "location": "eastus",
    "properties": {"creationData": {"createOption": "Upload", "uploadSizeBytes": SIZE}},
}


class Disk:
    """An upload disk of a region in this process, its data plane and its write SAS."""

    def __init__(self, engine: Engine) -> None:
        signer = Signer(b"k" * 32)
        self.service = RegionService(Region("eastus"), engine, signer)
        self.rid = ResourceId.of("sub", "rg", "disks", "d")
        self.service.put(self.rid, DISK)
        op = self.service.grant_access(self.rid, {"access": "Write", "durationInSeconds": 600})
        url = urlsplit(op.result["accessSAS"])
        self.engine_id = url.path.split("/")[-2]
        self.query = dict(parse_qsl(url.query))
        self.plane = DataPlane("eastus", engine, signer)

    def write(self, offset: int, data: bytes | None, length: int = 0, **kw: object) -> PageWrite:
        view = None if data is None else memoryview(data)
        return PageWrite(
            dict(kw.get("query", self.query)),  # type: ignore[call-overload]
            offset,
            length or len(view or b""),
            view,
            kw.get("conditions", lambda props: None),  # type: ignore[arg-type]
        )

    def content(self, offset: int, length: int) -> bytes:
        return self.plane.engine.read(self.engine_id, offset, length)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    with Engine.open(tmp_path) as engine:
        made = Disk(engine)
        yield made
        made.service.close()


def test_a_group_lands_as_if_its_writes_came_one_after_another(disk: Disk) -> None:
    seen: list[str] = []

    def note(props: Properties) -> None:
        seen.append(props.etag)

    before = disk.plane.properties(disk.plane.open(disk.engine_id, disk.query, "w")).etag
    writes = [
        disk.write(0, b"\x01" * 4 * PAGE, conditions=note),
        disk.write(PAGE, b"\x02" * PAGE, conditions=note),  # over the first one's second page
        disk.write(512, b"\x03" * 512, conditions=note),  # part of a page the first one wrote
        disk.write(PAGE * 3, None, PAGE, conditions=note),  # a clear of the first one's last
        disk.write(PAGE * 3 + 1024, b"\x04" * 512, conditions=note),  # into what was cleared
    ]
    outcomes = disk.plane.put_pages(disk.engine_id, writes)
    assert all(isinstance(o, Properties) for o in outcomes), outcomes
    etags = [o.etag for o in outcomes if isinstance(o, Properties)]
    assert len(set(etags)) == 5 and before not in etags  # every write moved the ETag
    assert seen == [before, *etags[:-1]]  # each judged by what the one before it left
    expected = bytearray(b"\x01" * 4 * PAGE)
    expected[PAGE : 2 * PAGE] = b"\x02" * PAGE
    expected[512:1024] = b"\x03" * 512
    expected[3 * PAGE :] = bytes(PAGE)
    expected[3 * PAGE + 1024 : 3 * PAGE + 1536] = b"\x04" * 512
    assert disk.content(0, 4 * PAGE) == bytes(expected)


def test_a_refused_write_refuses_only_itself(disk: Disk) -> None:
    def stale(props: Properties) -> None:
        raise err.ConditionNotMet("the ETag moved")

    forged = {**disk.query, "sig": "AAAA" + disk.query["sig"][4:]}
    writes = [
        disk.write(0, b"\x01" * PAGE),
        disk.write(PAGE, b"\x02" * PAGE, conditions=stale),
        disk.write(2 * PAGE, b"\x03" * PAGE, query=forged),
        disk.write(SIZE, b"\x04" * PAGE),  # past the end of the disk
        disk.write(3 * PAGE, b"\x05" * PAGE),
    ]
    outcomes = disk.plane.put_pages(disk.engine_id, writes)
    kinds = [type(o) for o in outcomes]
    assert kinds == [Properties, err.ConditionNotMet, SasRefused, err.InvalidPageRange, Properties]
    assert disk.content(0, 4 * PAGE) == b"\x01" * PAGE + bytes(2 * PAGE) + b"\x05" * PAGE
    first, last = outcomes[0], outcomes[-1]
    assert isinstance(first, Properties) and isinstance(last, Properties)
    assert first.etag != last.etag  # refused writes moved nothing, landed ones each a step


def test_a_grant_revoked_before_the_group_lands_refuses_all_of_it(disk: Disk) -> None:
    disk.service.revoke_access(disk.rid)
    outcomes = disk.plane.put_pages(disk.engine_id, [disk.write(0, b"\x01" * PAGE)] * 3)
    assert [type(o) for o in outcomes] == [SasRefused] * 3
    assert disk.content(0, PAGE) == bytes(PAGE)


# --- forming groups ---------------------------------------------------------------------------
class Landing:
    """A land function that records each group and waits for ``release`` before the first."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.release = asyncio.Event()

    async def __call__(self, engine_id: str, writes: Sequence[PageWrite]) -> list[Outcome]:
        await self.release.wait()
        self.groups.append([w.offset for w in writes])
        if any(w.offset == 666 for w in writes):
            raise OSError("the disk is on fire")
        return [
            err.ConditionNotMet("no") if w.offset == 13 else Properties(0, str(w.offset), 0, 0)
            for w in writes
        ]


def page(offset: int, size: int = PAGE) -> PageWrite:
    return PageWrite({}, offset, size, memoryview(bytes(size)), lambda props: None)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_writes_that_arrive_while_a_group_lands_go_together_in_order() -> None:
    async def main() -> None:
        landing = Landing()
        commits = GroupCommit(landing)
        first = asyncio.create_task(commits.put("d", page(0)))
        await settle()  # the first group (of one) is landing
        rest = [asyncio.create_task(commits.put("d", page(n))) for n in (1, 2, 13, 3)]
        other = asyncio.create_task(commits.put("e", page(7)))  # another disk: its own groups
        await settle()
        landing.release.set()
        assert (await first).etag == "0"
        results = await asyncio.gather(*rest, return_exceptions=True)
        assert [getattr(r, "etag", type(r)) for r in results] == [
            "1",
            "2",
            err.ConditionNotMet,
            "3",
        ]
        assert (await other).etag == "7"
        assert sorted(landing.groups) == [[0], [1, 2, 13, 3], [7]]

    asyncio.run(main())


def test_a_group_that_fails_fails_its_writes_and_the_next_group_lands() -> None:
    async def main() -> None:
        landing = Landing()
        commits = GroupCommit(landing)
        first = asyncio.create_task(commits.put("d", page(0)))
        await settle()
        doomed = [asyncio.create_task(commits.put("d", page(n))) for n in (5, 666)]
        await settle()
        landing.release.set()
        await first
        for task in doomed:
            with pytest.raises(OSError, match="fire"):
                await task
        assert (await commits.put("d", page(9))).etag == "9"
        assert landing.groups == [[0], [5, 666], [9]]

    asyncio.run(main())


def test_a_caller_gone_before_its_group_formed_writes_nothing() -> None:
    async def main() -> None:
        landing = Landing()
        commits = GroupCommit(landing)
        first = asyncio.create_task(commits.put("d", page(0)))
        await settle()
        gone = asyncio.create_task(commits.put("d", page(1)))
        kept = asyncio.create_task(commits.put("d", page(2)))
        await settle()
        gone.cancel()
        landing.release.set()
        await first
        assert (await kept).etag == "2"
        assert landing.groups == [[0], [2]]

    asyncio.run(main())


def test_a_group_carries_at_most_its_byte_cap() -> None:
    async def main() -> None:
        landing = Landing()
        commits = GroupCommit(landing)
        big = MAX_GROUP_BYTES // 4
        first = asyncio.create_task(commits.put("d", page(0)))
        await settle()
        rest = [asyncio.create_task(commits.put("d", page(n, big))) for n in range(1, 7)]
        await settle()
        landing.release.set()
        await asyncio.gather(first, *rest)
        assert landing.groups == [[0], [1, 2, 3, 4], [5, 6]]

    asyncio.run(main())
