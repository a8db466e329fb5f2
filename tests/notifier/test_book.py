"""The notifier's event book, fed real bus messages: the count and byte bounds forget
the oldest subtasks (in the book and in their task's log), never the newest for bytes,
and a stream following a subtask still gets a final event that pushed it out."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator

import numpy as np
import numpy.typing as npt
import pytest
from sse_starlette import ServerSentEvent

from bus.embedded import EmbeddedBus
from bus.registry_view import RegistryView
from notifier.book import SUBTASK_OVERHEAD, EventBook, SubtaskLog
from notifier.deliveries import DeliveryLog
from notifier.service import Notifier
from notifier.settings import NotifierSettings
from notifier.streams import Streams
from schemas.bus_settings import BusSettings
from schemas.messages import SubtaskEvent, Succeeded, Timings
from schemas.tensors import encode_array

MIB = 1024 * 1024
ACCOUNT = "acct-book"
TASK = "task-book"


def floats(n: int, seed: int = 0) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def queued(subtask_id: str) -> SubtaskEvent:
    return SubtaskEvent(subtask_id=subtask_id, task_id=TASK, account_id=ACCOUNT, kind="queued",
                        at_ms=1_000)


def succeeded(subtask_id: str, output: npt.NDArray[np.float32]) -> Succeeded:
    return Succeeded(subtask_id=subtask_id, task_id=TASK, account_id=ACCOUNT,
                     finished_at_ms=2_000, runner_id="runner-1",
                     timings=Timings(queued_ms=100.0, total_ms=300.0),
                     outputs=(encode_array("y", output),))


def task_subtasks(book: EventBook) -> list[str]:
    """The subtasks of TASK's log, in order, once each."""
    return list(dict.fromkeys(ev.subtask_id for _, ev in book.task(TASK, ACCOUNT).events))


def streams_over(book: EventBook) -> Streams:
    """The notifier's real SSE streams over ``book`` (nothing started: only its readers
    are used here)."""
    settings = NotifierSettings(sse_unknown_wait_s=5.0)
    registry = RegistryView(EmbeddedBus(None), "book.registry", background=False)
    return Streams(settings, book, registry, DeliveryLog(10))


def test_the_byte_bound_forgets_the_oldest_subtasks_and_their_task_events() -> None:
    book = EventBook(100_000, MIB)
    logs: list[SubtaskLog] = []
    for i in range(100):  # 1024 floats: ~20 KB of JSON in each final event
        sid = f"s{i:03d}"
        book.add_event(queued(sid))
        book.add_result(succeeded(sid, floats(1024, seed=i)))
        log = book.subtask(sid)
        assert log is not None, "the newest subtask is never forgotten"
        assert log.charged >= SUBTASK_OVERHEAD + len(log.slots[3].data) > 15_000
        logs.append(log)
    kept = [log for log in logs if book.subtask(log.subtask_id) is log]
    assert 10 < len(kept) < 100
    assert kept == logs[-len(kept):], "the oldest go first"
    assert book.held_bytes == sum(log.charged for log in kept) <= MIB
    assert book.held_bytes + logs[-len(kept) - 1].charged > MIB, "no more than needed"
    assert len(book) == len(kept)
    # The task's log holds only what the book holds: it would keep the outputs alive.
    assert task_subtasks(book) == [log.subtask_id for log in kept]


def test_the_events_a_book_keeps_are_not_tracked_by_the_gc() -> None:
    """Three events a subtask, up to hundreds of thousands: the cyclic collector walked
    each of them (``inferq.serve.GC_THRESHOLDS``); they hold nothing that could refer back."""
    book = EventBook(100_000, 256 * MIB)
    book.add_event(queued("s1"))
    book.add_result(succeeded("s1", floats(4)))
    log = book.subtask("s1")
    assert log is not None
    events = log.after(0)
    assert [e.kind for e in events] == ["queued", "running", "succeeded"]  # running derived
    assert json.loads(events[-1].data)["state"] == "success"  # written when read
    assert [gc.is_tracked(e) for e in events] == [False] * 3
    # Of what the book keeps for the subtask, only its log is tracked: no change signal
    # until a stream follows it, and its slots and task positions untracked once seen.
    gc.collect()
    assert log._changed is None
    assert not gc.is_tracked(log.slots) and not gc.is_tracked(log.task_positions)


def test_the_count_bound_still_forgets_the_oldest() -> None:
    book = EventBook(3, 256 * MIB)
    for i in range(5):
        book.add_event(queued(f"s{i}"))
        book.add_result(succeeded(f"s{i}", floats(4, seed=i)))
    assert [book.subtask(f"s{i}") is not None for i in range(5)] == [False, False, True, True,
                                                                      True]
    assert book.held_bytes == sum(log.charged for i in range(2, 5)
                                  if (log := book.subtask(f"s{i}")) is not None)
    assert task_subtasks(book) == ["s2", "s3", "s4"]


def test_the_newest_subtask_stays_until_a_newer_one_comes_even_past_the_bound() -> None:
    book = EventBook(100_000, MIB)
    book.add_event(queued("small"))
    book.add_result(succeeded("big", floats(300_000)))  # ~3 MiB of JSON on its own
    assert book.subtask("small") is None
    big = book.subtask("big")
    assert big is not None and book.held_bytes == big.charged > MIB
    book.add_event(queued("next"))
    assert book.subtask("big") is None and book.subtask("next") is not None
    assert book.held_bytes <= MIB
    assert task_subtasks(book) == ["next"]


async def collect(events: AsyncIterator[ServerSentEvent]) -> list[ServerSentEvent]:
    return [ev async for ev in events]


async def follow(book: EventBook, subtask_id: str
                 ) -> tuple[SubtaskLog, asyncio.Task[list[ServerSentEvent]]]:
    """A queued subtask and the real SSE stream following it, which has sent `queued`
    and waits for the next step."""
    streams = streams_over(book)
    book.add_event(queued(subtask_id))
    log = await streams._find(subtask_id, ACCOUNT)
    assert log is not None
    follower = asyncio.create_task(collect(streams._follow_subtask(log, 0)))
    await asyncio.sleep(0)
    return log, follower


async def test_a_final_event_that_pushes_its_subtask_out_reaches_its_follower() -> None:
    book = EventBook(100_000, MIB)
    _, follower = await follow(book, "a")
    output = floats(300_000, seed=7)
    book.add_result(succeeded("a", output))
    book.add_event(queued("b"))  # same tick: `a` is forgotten before the follower runs
    assert book.subtask("a") is None and book.held_bytes <= MIB
    events = await asyncio.wait_for(follower, 5)
    assert [(e.event, e.id) for e in events] == [("queued", "a:1"), ("running", "a:2"),
                                                 ("succeeded", "a:3")]
    final = json.loads(str(events[-1].data))
    assert final["state"] == "success" and final["data"]["y"] == output.tolist()


async def test_a_followed_subtask_forgotten_before_its_final_event_still_gets_it() -> None:
    book = EventBook(100_000, MIB)
    log, follower = await follow(book, "slow")
    # Another model's large outputs push `slow` out while it is still running...
    for i in range(3):
        book.add_result(succeeded(f"big-{i}", floats(200_000, seed=i)))
    assert book.subtask("slow") is None and not follower.done()
    # ... and its result, when it comes, reaches the stream that follows it.
    output = floats(8, seed=9)
    book.add_result(succeeded("slow", output))
    events = await asyncio.wait_for(follower, 5)
    assert [(e.event, e.id) for e in events] == [("queued", "slow:1"), ("running", "slow:2"),
                                                 ("succeeded", "slow:3")]
    assert json.loads(str(events[-1].data))["data"]["y"] == output.tolist()
    assert book.subtask("slow") is log  # relinked: later readers find it too
    # Nobody follows a forgotten one: it is not kept alive, a new log starts.
    book.add_event(queued("idle"))
    for i in range(3):
        book.add_result(succeeded(f"more-{i}", floats(200_000, seed=i)))
    assert book.subtask("idle") is None
    book.add_result(succeeded("idle", output))
    idle = book.subtask("idle")
    assert idle is not None
    assert [e.kind for e in idle.after(0)] == ["queued", "running", "succeeded"]
    assert idle.slots[1].at_ms == 1_700  # derived from the result, not the queued event's


async def test_a_reader_waiting_for_an_unseen_subtask_gets_its_large_final_event() -> None:
    book = EventBook(100_000, MIB)
    streams = streams_over(book)
    finder = asyncio.create_task(streams._find("late", ACCOUNT))
    await asyncio.sleep(0)  # it waits for the subtask to arrive
    output = floats(300_000, seed=3)
    book.add_result(succeeded("late", output))  # its result before any event, over the bound
    log = await asyncio.wait_for(finder, 5)
    assert log is not None
    events = await asyncio.wait_for(collect(streams._follow_subtask(log, 0)), 5)
    assert [e.event for e in events] == ["queued", "running", "succeeded"]
    assert json.loads(str(events[-1].data))["data"]["y"] == output.tolist()


def test_the_notifier_builds_its_book_with_the_byte_bound() -> None:
    settings = NotifierSettings(bus=BusSettings(topic_prefix="book."), book_bytes=MIB)
    book = Notifier(settings, EmbeddedBus(None)).book
    for i in range(100):
        book.add_result(succeeded(f"s{i}", floats(1024, seed=i)))
    assert book.subtask("s0") is None and book.subtask("s99") is not None
    assert book.held_bytes <= MIB


def test_a_forgotten_subtask_leaves_its_task_log_wherever_its_events_are() -> None:
    # Its first event at the front, its last one far behind other subtasks' events
    # (found by bisection past the first few entries): both go, nobody else's.
    from notifier.book import StreamEvent, TaskLog

    log = TaskLog(ACCOUNT)
    owners = ["a"] + [f"s{i}" for i in range(20)] + ["a"] + [f"t{i}" for i in range(8)]
    for pos, owner in enumerate(owners):
        log.events.append((pos, StreamEvent(owner, 1, "queued", "{}", pos)))
    log.drop("a", [0, 21])
    left = [(pos, ev.subtask_id) for pos, ev in log.events]
    assert left == [(p, o) for p, o in enumerate(owners) if o != "a"]
    log.drop("s3", [4, 99])  # near the front, and a position never appended
    assert (4, "s3") not in [(pos, ev.subtask_id) for pos, ev in log.events]
    assert len(log.events) == len(owners) - 3


def test_a_final_event_writes_the_get_body_when_first_read_and_is_charged_no_less() -> None:
    from schemas.submit_api import json_encoder, submit_response

    book = EventBook(100, MIB)
    result = succeeded("lazy", floats(1024))
    book.add_event(queued("lazy"))
    book.add_result(result)
    log = book.subtask("lazy")
    assert log is not None
    final = log.slots[3]
    charged_before = log.charged
    body = json_encoder.encode(submit_response("lazy", result)).decode()
    assert final.data == body and final.data is final.data  # written once, then kept
    assert log.charged == charged_before >= SUBTASK_OVERHEAD + len(body)
    assert json.loads(final.data)["data"]["y"][0] == pytest.approx(float(floats(1024)[0]))
