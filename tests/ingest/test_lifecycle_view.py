"""Ingest's lifecycle view: each subtask's lines before its result, bounded, and kept as
objects the cyclic GC does not walk (one for each of up to hundreds of thousands)."""

from __future__ import annotations

import gc

from bus.embedded import EmbeddedBus
from ingest.lifecycle import LifecycleView
from schemas.messages import SubtaskEvent


def event(subtask_id: str, kind: str, at_ms: int, message: str = "") -> SubtaskEvent:
    return SubtaskEvent(subtask_id=subtask_id, task_id="t", account_id="a", kind=kind,
                        at_ms=at_ms, message=message)


def test_lines_in_time_order_the_oldest_forgotten_and_none_tracked_by_the_gc() -> None:
    view = LifecycleView(EmbeddedBus(None), "t.events", capacity=2, follow=False)
    view.add(event("s1", "running", 20, "runner-1"))  # may be read before its queued
    view.add(event("s1", "queued", 10, '{"k": 1}'))
    view.add(event("s1", "succeeded", 30))  # the result gives the final line, not this
    lc = view.get("s1")
    assert lc is not None
    assert lc.lines == ((10, "queued"), (20, "running on runner-1"))
    assert (lc.created_at_ms, lc.updated_at_ms, lc.running, lc.metadata) == (
        10, 20, True, '{"k": 1}')
    # Neither the lifecycle nor, once collections have seen them, its lines: every
    # collection walks what is tracked and kept. (A tuple holding tuples is untracked by
    # the collection after the one that untracks what it holds.)
    gc.collect()
    gc.collect()
    assert not gc.is_tracked(lc) and not gc.is_tracked(lc.lines)
    view.add(event("s2", "queued", 40))
    view.add(event("s3", "queued", 50))
    assert [view.get(s) is not None for s in ("s1", "s2", "s3")] == [False, True, True]
