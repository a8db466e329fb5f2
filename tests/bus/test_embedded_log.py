from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bus import embedded_log
from bus.embedded import EmbeddedBus
from bus.embedded_log import PartitionLog
from bus.factory import bus_for
from bus.topics import TopicSpec
from schemas.bus_settings import BusSettings


def test_log_persists_and_compacts_on_reload(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    log = PartitionLog("t", path, compact=True, max_records=100)
    log.append(b"a", b"1", (), 0)
    log.append(b"b", b"1", (("h", b"v"),), 0)
    log.append(b"a", b"2", (), 0)
    log.append(b"b", None, (), 0)  # tombstone
    log.close()
    again = PartitionLog("t", path, compact=True, max_records=100)
    assert [(r.key, r.value, r.offset) for r in again.records] == [(b"a", b"2", 2)]
    assert again.next_offset == 4  # offsets keep counting after compaction
    assert again.read(0, 10)[0].offset == 2  # a read from a compacted gap lands past it
    again.close()


def test_reads_land_on_the_first_record_at_or_past_the_position_across_gaps(
    tmp_path: Path,
) -> None:
    # Compaction leaves gaps before the contiguous tail of later appends: a read from
    # any position, in a gap or not, starts at the first record at or past it.
    log = PartitionLog("t", tmp_path / "t.log", compact=True, max_records=100)
    for i in range(6):
        log.append(b"k%d" % (i % 2), b"%d" % i, (), 0)  # offsets 0..5, keys alternate
    log.close()
    again = PartitionLog("t", tmp_path / "t.log", compact=True, max_records=100)
    for i in range(6, 9):
        again.append(b"n%d" % i, b"%d" % i, (), 0)
    held = [r.offset for r in again.records]
    assert held == [4, 5, 6, 7, 8]
    for position in range(10):
        want = [o for o in held if o >= position][:3]
        assert [r.offset for r in again.read(position, 3)] == want, position
    again.close()


def test_torn_last_frame_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    log = PartitionLog("t", path, compact=False, max_records=100)
    log.append(b"k", b"v1", (), 0)
    log.append(b"k", b"v2", (), 0)
    log.close()
    path.write_bytes(path.read_bytes()[:-3])  # a crash mid-write
    again = PartitionLog("t", path, compact=False, max_records=100)
    assert [r.value for r in again.records] == [b"v1"]
    again.append(b"k", b"v3", (), 0)
    assert [r.offset for r in again.read(0, 10)] == [0, 1]
    again.close()


def test_retention_bounds_memory_and_disk(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    log = PartitionLog("t", path, compact=False, max_records=50, rewrite_bytes=4096)
    for i in range(1000):
        log.append(None, b"x" * 100, (), i)
    assert len(log.records) <= 55
    assert log.records[-1].offset == 999
    assert path.stat().st_size < 4096 + 55 * 200
    log.close()


_KIB = 1024


def test_a_byte_bound_keeps_memory_and_disk_bounded(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    log = PartitionLog("t", path, compact=False, max_records=100_000, max_bytes=64 * _KIB,
                       rewrite_bytes=32 * _KIB)
    for i in range(2000):  # 2 MiB of 1 KiB values: the record count never binds
        log.append(b"k%d" % i, b"x" * _KIB, (("model", b"m"),), i)
        assert log.held_bytes <= 64 * _KIB * 11 // 10  # trimmed once a tenth past
    kept = log.records
    assert 60 <= len(kept) <= 70
    assert log.held_bytes == sum(len(r.key or b"") + len(r.value or b"") + 6 for r in kept)
    assert kept[-1].offset == 1999 and log.next_offset == 2000
    assert [r.offset for r in kept] == list(range(kept[0].offset, 2000))  # oldest went first
    # What is kept, and at most as much again appended since the last rewrite (framing:
    # under 64 bytes a record).
    assert path.stat().st_size < 2 * (64 * _KIB * 11 // 10 + len(kept) * 64)
    # A read from a dropped position lands on the oldest record kept.
    assert log.read(0, 1)[0].offset == kept[0].offset
    log.close()


def test_rewrites_copy_about_once_what_is_appended_however_much_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A topic keeping 64 KiB with rewrites due every 4 KiB appended: rewriting at each
    # 4 KiB would copy the kept 64 KiB each time (16 bytes copied per byte appended).
    copied = []
    real = embedded_log._copy_frames

    def counting(src: Path, dst: Path, starts: Any, lengths: Any) -> Any:
        copied.append(sum(lengths))
        return real(src, dst, starts, lengths)

    monkeypatch.setattr(embedded_log, "_copy_frames", counting)
    path = tmp_path / "t.log"
    log = PartitionLog("t", path, compact=False, max_records=100_000, max_bytes=64 * _KIB,
                       rewrite_bytes=4 * _KIB)
    appended = 0
    for i in range(1024):  # 1 MiB of 1 KiB values
        log.append(None, b"x" * _KIB, (), i)
        appended += _KIB
        assert path.stat().st_size < 2 * (64 * _KIB * 11 // 10) + 2 * 1024 * 64
    assert len(copied) >= 8  # it did rewrite, all along
    assert sum(copied) < 1.5 * appended
    log.close()


def test_the_newest_record_is_kept_even_when_it_alone_is_past_the_byte_bound(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.log"
    log = PartitionLog("t", path, compact=False, max_records=1000, max_bytes=4 * _KIB)
    log.append(None, b"a" * 100, (), 0)
    log.append(None, b"b" * 10 * _KIB, (), 1)
    assert [r.offset for r in log.records] == [1]
    assert log.held_bytes == 10 * _KIB
    log.append(None, b"c" * 100, (), 2)  # the big one goes as soon as something follows
    assert [r.offset for r in log.records] == [2]
    log.append(None, b"d" * 10 * _KIB, (), 3)
    log.close()
    again = PartitionLog("t", path, compact=False, max_records=1000, max_bytes=4 * _KIB)
    assert [(r.offset, len(r.value or b"")) for r in again.records] == [(3, 10 * _KIB)]
    assert again.next_offset == 4
    again.close()


def test_the_byte_bound_is_exact_after_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    log = PartitionLog("t", path, compact=False, max_records=100_000, max_bytes=1 << 20)
    for i in range(100):
        log.append(None, b"x" * _KIB, (), i)  # 100 KiB kept under a 1 MiB bound
    log.close()
    # Restarted with a smaller bound: the oldest go, down to the bound, not to a tenth past.
    again = PartitionLog("t", path, compact=False, max_records=100_000, max_bytes=10 * _KIB)
    assert [r.offset for r in again.records] == list(range(90, 100))
    assert again.held_bytes == 10 * _KIB
    again.append(None, b"y", (), 100)
    assert again.next_offset == 101
    again.close()
    assert PartitionLog("t", path, compact=False, max_records=100_000,
                        max_bytes=10 * _KIB).records[0].offset == 91


def test_compaction_runs_before_the_byte_bound(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    log = PartitionLog("t", path, compact=True, max_records=100_000, max_bytes=1 << 20)
    for i in range(10):
        log.append(b"key%d" % (i % 3), b"v" * _KIB, (), i)  # superseded but under the bound
    log.append(b"gone", b"v" * _KIB, (), 10)
    log.append(b"gone", None, (), 11)  # tombstone: 4 bytes while it is held
    assert log.held_bytes == 11 * (4 + _KIB) + 4
    log.close()
    # Compaction leaves key0..2 (offsets 7, 8, 9): 3 KiB and a bit, so a 3 KiB bound
    # drops only the oldest survivor; without compaction first it would drop far more.
    again = PartitionLog("t", path, compact=True, max_records=100_000, max_bytes=3 * _KIB)
    assert [(r.key, r.offset) for r in again.records] == [(b"key2", 8), (b"key0", 9)]
    assert again.held_bytes == 2 * (4 + _KIB)
    assert again.next_offset == 12
    again.close()


@pytest.mark.parametrize(("name", "value", "kept"), [
    ("INFERQ_EMBEDDED_MAX_RECORDS", "1000", 1000),
    ("INFERQ_EMBEDDED_MAX_BYTES", str(1 << 20), 1024),  # values of 1 KiB
])
async def test_the_embedded_bus_keeps_what_its_settings_say(
    tmp_path: Path, name: str, value: str, kept: int,
) -> None:
    settings = BusSettings.from_env({name: value, "INFERQ_DATA_DIR": str(tmp_path)})
    for at_most in (kept * 11 // 10, kept):  # a tenth of slack while running; exact on load
        bus = bus_for(settings, "test")
        assert isinstance(bus, EmbeddedBus)
        await bus.start()
        try:
            await bus.ensure_topics([TopicSpec("t", 1, compact=False)])
            if at_most > kept:
                for i in range(3000):  # over both bounds' settings, far under the other's
                    bus.publish_soon("t", None, b"%08d" % i + b"x" * 1016)
            held = bus.read("t", 0, 10_000)
            assert kept <= len(held) <= at_most
            assert held[-1].offset == 2999 and (held[-1].value or b"").startswith(b"00002999")
        finally:
            await bus.stop()


async def wait_rewritten(log: PartitionLog) -> None:
    for _ in range(500):
        if log._rewriting is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the rewrite did not finish in 5 s")


async def test_a_rewrite_runs_beside_the_loop_and_keeps_what_is_appended_meanwhile(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.log"
    log = PartitionLog("t", path, compact=False, max_records=300, rewrite_bytes=64 * 1024)
    rewrites = 0
    for i in range(2000):
        log.append(str(i).encode(), b"x" * 200, (("h", str(i).encode()),), i)
        if log._rewriting is not None:
            rewrites += 1
            # Appends go on while it copies (nothing is trimmed until it is done)...
            for j in range(5):
                log.append(b"during", f"{i}.{j}".encode(), (), i)
            await wait_rewritten(log)
    assert rewrites >= 5
    await wait_rewritten(log)
    held = [(r.offset, r.key, r.value, r.headers) for r in log.records]
    assert len(held) <= 330 and held[-1][2] == b"x" * 200
    # ... and the file holds exactly what is kept (plus what came after the last
    # rewrite), every frame intact: a reload reads the same records.
    log.close()
    again = PartitionLog("t", path, compact=False, max_records=10_000)
    assert [(r.offset, r.key, r.value, r.headers) for r in again.records][-len(held):] == held
    assert len(again.records) < len(held) + 64 * 1024 // 200
    again.close()


async def test_closing_during_a_rewrite_keeps_the_old_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    log = PartitionLog("t", path, compact=True, max_records=10_000, rewrite_bytes=256 * 1024)
    i = 0
    while log._rewriting is None:
        log.append(str(i % 700).encode(), str(i).encode() * 50, (), i)
        i += 1
    log.append(b"last", b"after the snapshot", (), i)
    log.close()  # waits for the copy, drops it: the log is the old file, appended to
    assert not path.with_suffix(".tmp").exists()
    again = PartitionLog("t", path, compact=True, max_records=10_000)
    newest = {r.key: r.value for r in again.records}
    assert newest[b"last"] == b"after the snapshot"
    assert newest[str((i - 1) % 700).encode()] == str(i - 1).encode() * 50
    assert len(again.records) == 701  # compacted on load: the newest of each key
    again.close()


async def test_a_waiting_tail_wakes_on_a_publish_times_out_and_cancels_cleanly() -> None:
    bus = EmbeddedBus(None)
    await bus.start()
    await bus.ensure_topics([TopicSpec("t", 1, compact=False)])
    tail = bus.tail(["t"], from_beginning=False)
    await tail.start()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await tail.fetch(10, 0.05) == []  # nothing came: back after the timeout
    assert 0.04 <= loop.time() - t0 < 1.0
    waiting = asyncio.create_task(tail.fetch(10, 30))
    await asyncio.sleep(0.01)
    bus.publish_soon("t", b"k", b"v")
    assert [r.value for r in await asyncio.wait_for(waiting, 1)] == [b"v"]
    parked = asyncio.create_task(tail.fetch(10, 30))
    await asyncio.sleep(0.01)
    parked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await parked
    assert not any(bus._waiters.values())  # nothing left behind for a publish to wake
    await bus.stop()
