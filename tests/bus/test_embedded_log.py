from __future__ import annotations

from pathlib import Path

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


async def test_the_embedded_bus_keeps_what_its_setting_says(tmp_path: Path) -> None:
    settings = BusSettings.from_env({"INFERQ_EMBEDDED_MAX_RECORDS": "1000",
                                     "INFERQ_DATA_DIR": str(tmp_path)})
    for kept_at_most in (1100, 1000):  # a tenth of slack while running; exact on load
        bus = bus_for(settings, "test")
        assert isinstance(bus, EmbeddedBus)
        await bus.start()
        try:
            await bus.ensure_topics([TopicSpec("t", 1, compact=False)])
            if kept_at_most == 1100:
                for i in range(1500):
                    bus.publish_soon("t", None, str(i).encode())
            held = bus.read("t", 0, 10_000)
            assert 1000 <= len(held) <= kept_at_most
            assert held[-1].offset == 1499 and held[-1].value == b"1499"
        finally:
            await bus.stop()
