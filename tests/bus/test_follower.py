"""Which replayed views follow their topics in the background, and which with the short
fetch wait (what is read right after a result: the result, its lines, and what the
notifier needs to deliver it); which readers the embedded bus wakes late (deferred):
those no answer waits on."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from bus.embedded import EmbeddedBus, EmbeddedGroupConsumer, EmbeddedTail
from bus.registry_view import RegistryView
from ingest.app import build_context
from ingest.lifecycle import LifecycleView
from ingest.rate_limit import Replicas
from ingest.results import ResultBook
from ingest.runners_view import RunnersView
from ingest.settings import IngestSettings
from notifier.service import Notifier
from notifier.settings import NotifierSettings
from runner.control import ControlListener
from schemas.bus_settings import BusSettings
from schemas.messages import Failed, SubtaskEvent, encode


class RecordingBus(EmbeddedBus):
    """The embedded bus, noting whether each topic was tailed in the background, and
    which readers (a tail's or group's name: topics) deferred which topics."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.background: dict[str, bool] = {}
        self.tails: list[tuple[str, ...]] = []
        self.deferred: dict[tuple[str, ...] | str, set[str]] = {}

    def tail(self, topics: Sequence[str], *, from_beginning: bool = True,
             background: bool = False, deferred: Collection[str] = ()) -> EmbeddedTail:
        self.tails.append(tuple(topics))
        self.deferred[tuple(topics)] = set(deferred)
        for t in topics:
            self.background[t] = background
        return super().tail(topics, from_beginning=from_beginning, background=background,
                            deferred=deferred)

    def group_consumer(self, topics: Sequence[str], group_id: str, *,
                       deferred: Collection[str] = ()) -> EmbeddedGroupConsumer:
        self.deferred[group_id] = set(deferred)
        return super().group_consumer(topics, group_id, deferred=deferred)


async def test_only_results_and_lifecycle_lines_follow_with_the_short_wait(tmp_path: Path) -> None:
    bus = RecordingBus(tmp_path)
    await bus.start()
    views = [
        ResultBook(bus, "results", capacity=10, max_waiters=10, max_bytes=1 << 20),
        RegistryView(bus, "registry"),
        LifecycleView(bus, "events", capacity=10),
        RunnersView(bus, "runners", heartbeat_s=5),
        # The notifier's registry: webhook secrets and disabled URLs act on fresh writes.
        Notifier(NotifierSettings(bus=BusSettings(topic_prefix="n.")), bus).registry,
        Replicas(bus, "replicas", beat_s=5),
        ControlListener(bus, "control", "r1", on_cancel=lambda _: None,
                        on_command=lambda _: None),
    ]
    try:
        for view in views:
            await view.start()
        assert bus.background == {"results": False, "registry": True, "events": False,
                                  "runners": True, "n.registry": False, "replicas": True,
                                  "control": True}
    finally:
        for view in reversed(views):
            await view.stop()
        await bus.stop()


async def test_ingest_follows_results_and_lifecycle_lines_on_one_tail(tmp_path: Path) -> None:
    """One short-wait tail, not two: on Kafka each is an idle fetch every few ms."""
    bus = RecordingBus(tmp_path / "bus")
    await bus.start()
    settings = IngestSettings(bus=BusSettings(topic_prefix="p."), model_dir=tmp_path / "m",
                              files_dir=tmp_path / "f")
    ctx = build_context(settings, bus)
    await bus.ensure_topics(ctx.topics.specs(1))
    await ctx.results.start()
    await ctx.lifecycle.start()
    try:
        assert [t for t in bus.tails if not bus.background[t[0]]] == [("p.results", "p.events")]
        # Both views are fed from it: a subtask's `running` line, then its result.
        sid = "s-1"
        running = SubtaskEvent(subtask_id=sid, task_id="t", account_id="a", kind="running",
                               at_ms=1, message="r1")
        await bus.publish("p.events", sid.encode(), encode(running))
        done = Failed(subtask_id=sid, task_id="t", account_id="a", error="boom")
        await bus.publish("p.results", sid.encode(), encode(done))
        assert await ctx.results.watch(sid, 5) == done
        lc = ctx.lifecycle.get(sid)
        assert lc is not None and lc.running and lc.lines == ((1, "running on r1"),)
    finally:
        await ctx.lifecycle.stop()
        await ctx.results.stop()
        await bus.stop()


async def test_only_readers_no_answer_waits_on_are_woken_late(tmp_path: Path) -> None:
    """Ingest's tail is woken at once by a result (a synchronous call waits on it) and
    late by lifecycle lines; the notifier's book and webhook deliverer late by both."""
    bus = RecordingBus(tmp_path / "bus")
    await bus.start()
    settings = IngestSettings(bus=BusSettings(topic_prefix="p."), model_dir=tmp_path / "m",
                              files_dir=tmp_path / "f")
    ctx = build_context(settings, bus)
    nsettings = NotifierSettings(bus=BusSettings(topic_prefix="p."))
    notifier = Notifier(nsettings, bus)
    await bus.ensure_topics(ctx.topics.specs(1))
    await ctx.results.start()
    await notifier.start()
    try:
        assert bus.deferred[("p.results", "p.events")] == {"p.events"}
        assert bus.deferred[("p.events", "p.results")] == {"p.events", "p.results"}
        assert bus.deferred[nsettings.results_group] == {"p.results"}
        assert bus.deferred[("p.registry",)] == set()
    finally:
        await notifier.stop()
        await ctx.results.stop()
        await bus.stop()
