"""Which replayed views follow their topics in the background, and which with the short
fetch wait (what is read right after a result: the result, its lines, and what the
notifier needs to deliver it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bus.embedded import EmbeddedBus, EmbeddedTail
from bus.registry_view import RegistryView
from ingest.lifecycle import LifecycleView
from ingest.rate_limit import Replicas
from ingest.results import ResultBook
from ingest.runners_view import RunnersView
from notifier.service import Notifier
from notifier.settings import NotifierSettings
from runner.control import ControlListener
from schemas.bus_settings import BusSettings


class RecordingBus(EmbeddedBus):
    """The embedded bus, noting whether each topic was tailed in the background."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.background: dict[str, bool] = {}

    def tail(self, topics: Sequence[str], *, from_beginning: bool = True,
             background: bool = False) -> EmbeddedTail:
        for t in topics:
            self.background[t] = background
        return super().tail(topics, from_beginning=from_beginning, background=background)


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
