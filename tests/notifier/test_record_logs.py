"""The notifier's per-record debug lines follow the log level as it is when it reads."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bus.embedded import EmbeddedBus
from bus.topics import TopicNames
from notifier.service import Notifier
from notifier.settings import NotifierSettings
from schemas.bus_settings import BusSettings
from schemas.messages import MESSAGE_HEADERS, SubtaskEvent, encode


async def test_a_debug_level_raised_while_the_notifier_waits_holds_for_what_it_reads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The level used to be read before the fetch, which waits up to half a second: the
    first records after DEBUG was turned on went unlogged (a CI run of
    ``test_metrics_and_trace_ids`` missed its traced subtask's lines that way)."""
    caplog.set_level(logging.INFO, logger="notifier.service")
    bus = EmbeddedBus(None)
    await bus.start()
    topics = TopicNames("logs.")
    await bus.ensure_topics(topics.specs(1))
    try:
        async with Notifier(NotifierSettings(bus=BusSettings(topic_prefix="logs.")), bus) as n:
            await asyncio.wait_for(n.caught_up.wait(), 5)
            await asyncio.sleep(0.05)  # parked in its fetch, read at INFO
            caplog.set_level(logging.DEBUG, logger="notifier.service")
            event = SubtaskEvent(subtask_id="s-1", task_id="t-1", account_id="a",
                                 kind="queued", at_ms=1)
            await bus.publish(topics.events, b"s-1", encode(event), MESSAGE_HEADERS)
            for _ in range(250):
                if len(n.book):
                    break
                await asyncio.sleep(0.02)
            assert len(n.book) == 1
            lines = [r for r in caplog.records if r.name == "notifier.service"
                     and r.getMessage() == "events record"]
            assert [getattr(r, "subtask_id", None) for r in lines] == ["s-1"]
    finally:
        await bus.stop()
