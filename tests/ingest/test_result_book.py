"""The result book's bounds: results forgotten oldest first past the count or the bytes,
never at the cost of the caller a result answers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from bus.embedded import EmbeddedBus
from ingest.app import build_context
from ingest.errors import NotFound
from ingest.results import ENTRY_OVERHEAD_BYTES, ResultBook, result_size
from ingest.settings import IngestSettings
from ingest.task_view import task_state
from schemas.bus_settings import BusSettings
from schemas.messages import (
    Failed,
    InferenceRequest,
    ModelRef,
    SubtaskResult,
    Succeeded,
    encode,
)
from schemas.tasks_api import COMPLETED
from schemas.tensors import decode_tensor, encode_array

MIB = 1024 * 1024


def succeeded(n_bytes: int, *, account: str = "acme", sid: str | None = None) -> Succeeded:
    """A result whose one float32 output holds ``n_bytes`` of data."""
    out = np.arange(n_bytes // 4, dtype=np.float32)
    return Succeeded(subtask_id=sid or str(uuid.uuid4()), task_id="t1", account_id=account,
                     outputs=(encode_array("y", out),))


def test_size_counts_data_strings_error_and_overhead() -> None:
    numeric = succeeded(4000)
    assert result_size(numeric) == ENTRY_OVERHEAD_BYTES + 4000
    # Strings at their UTF-8 size: "é" is 2 bytes, "日本" 6.
    words = encode_array("w", np.array(["ab", "é", "日本"], dtype=object))
    mixed = Succeeded(subtask_id="s", task_id="t", account_id="a",
                      outputs=(words, encode_array("n", np.zeros(3, dtype=np.int64))))
    assert result_size(mixed) == ENTRY_OVERHEAD_BYTES + (2 + 2 + 6) + 24
    failed = Failed(subtask_id="f", task_id="t", account_id="a", error="boom é")
    assert result_size(failed) == ENTRY_OVERHEAD_BYTES + 7


def test_bytes_bound_forgets_oldest_first() -> None:
    each = result_size(succeeded(100_000))
    book = ResultBook(EmbeddedBus(None), "results", capacity=1000, max_waiters=10,
                      max_bytes=3 * each)
    results = [succeeded(100_000) for _ in range(5)]
    for r in results[:3]:
        book.add(r)
    assert book.held == 3 and book.held_bytes == 3 * each  # exactly at the bound: kept
    for r in results[3:]:
        book.add(r)
    assert [book.get(r.subtask_id) is not None for r in results] == [False, False, True,
                                                                       True, True]
    assert book.held_bytes == 3 * each
    # A result worth two pushes out as many old ones as it needs, oldest first.
    large = succeeded(2 * each - ENTRY_OVERHEAD_BYTES)
    book.add(large)
    assert [book.get(r.subtask_id) is not None for r in results] == [False] * 4 + [True]
    assert book.get(large.subtask_id) is large
    assert book.held_bytes == each + result_size(large) == 3 * each


def test_count_bound_still_applies_and_a_repeat_is_not_charged_twice() -> None:
    book = ResultBook(EmbeddedBus(None), "results", capacity=3, max_waiters=10,
                      max_bytes=256 * MIB)
    results: list[SubtaskResult] = [succeeded(16) for _ in range(4)]
    for r in results:
        book.add(r)
    assert book.held == 3
    assert book.get(results[0].subtask_id) is None
    assert all(book.get(r.subtask_id) is r for r in results[1:])
    before = book.held_bytes
    # A redelivered request's second result: ignored, the first one stays.
    again = succeeded(64, sid=results[3].subtask_id)
    book.add(again)
    assert book.held_bytes == before and book.get(again.subtask_id) is results[3]


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
    b = EmbeddedBus(tmp_path)
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


async def test_oversized_result_reaches_its_waiter_and_watcher(bus: EmbeddedBus) -> None:
    book = ResultBook(bus, "results", capacity=100, max_waiters=10, max_bytes=MIB)
    await book.start()
    try:
        big = succeeded(2 * MIB)
        fut = book.expect(big.subtask_id)
        watcher = asyncio.create_task(book.watch(big.subtask_id, 5))
        await asyncio.sleep(0)  # the watcher registers before the result is published
        await bus.publish("results", big.subtask_id.encode(), encode(big))
        got = await book.wait(big.subtask_id, fut, 5)
        assert isinstance(got, Succeeded) and got.outputs[0].data == big.outputs[0].data
        assert await watcher == got
        # The newest result stays however large, so a read right after finds it...
        assert book.get(big.subtask_id) == got
        assert book.held_bytes > MIB
        # ...until the next one comes: then it is forgotten, and the book is in bounds.
        small = succeeded(16)
        await bus.publish("results", small.subtask_id.encode(), encode(small))
        assert await book.watch(small.subtask_id, 5) == small
        assert book.get(big.subtask_id) is None
        assert book.held == 1 and book.held_bytes == result_size(small)
    finally:
        await book.stop()


async def test_a_forgotten_result_is_unknown_to_every_view(bus: EmbeddedBus,
                                                             tmp_path: Path) -> None:
    settings = IngestSettings(bus=BusSettings(topic_prefix="rb."), results_cache_bytes=MIB,
                              model_dir=tmp_path / "models", files_dir=tmp_path / "files")
    ctx = build_context(settings, bus)
    await bus.ensure_topics(ctx.topics.specs(1))
    await ctx.results.start()
    await ctx.lifecycle.start()
    try:
        sid = str(uuid.uuid4())
        req = InferenceRequest(subtask_id=sid, task_id="t1", account_id="acme",
                               model=ModelRef(name="m", version="1", uri="u", sha256="0"))
        run = asyncio.create_task(ctx.core.run(req, 5))
        await asyncio.sleep(0)  # run() registers its waiter before its first await
        assert ctx.results.waiting == 1
        big = succeeded(2 * MIB, sid=sid)
        await bus.publish(ctx.topics.results, sid.encode(), encode(big))
        result = await run
        assert isinstance(result, Succeeded)
        assert decode_tensor(result.outputs[0]).shape == (2 * MIB // 4,)
        # The tasks API's POST /run reads the book right after its waiter is answered.
        assert task_state(ctx, sid, "acme").status == COMPLETED

        # The lifecycle view holds the subtask's `queued` line (run() published it).
        for _ in range(200):
            if ctx.lifecycle.get(sid) is not None:
                break
            await asyncio.sleep(0.01)
        assert ctx.lifecycle.get(sid) is not None

        small = succeeded(16)
        await bus.publish(ctx.topics.results, small.subtask_id.encode(), encode(small))
        assert await ctx.results.watch(small.subtask_id, 5) == small
        assert ctx.results.get(sid) is None
        # Forgotten, and with it what the other views kept: the subtask is unknown here
        # now (404), as on a replica that never saw it — not `pending` for ever on the
        # replica that took it, not `running` from its lifecycle lines.
        assert ctx.lifecycle.get(sid) is None
        with pytest.raises(NotFound):
            ctx.core.lookup(sid, "acme")
        with pytest.raises(NotFound):
            task_state(ctx, sid, "acme")
    finally:
        await ctx.lifecycle.stop()
        await ctx.results.stop()
