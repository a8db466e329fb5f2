"""The event book: every subtask's lifecycle as SSE events, and who may see it.

Event ids are ``<subtask id>:<seq>`` with a fixed seq per lifecycle step: 1 queued,
2 running, 3 the final event (succeeded | failed | cancelled | expired). Fixed, not
counted: every notifier replica, and a notifier that restarted and replayed the
topics, gives the same event the same id, so ``Last-Event-ID`` resumes anywhere
without gaps or repeats. The seq is monotonic per subtask; a step that arrives after a
later one (events and results are different topics) still fills its slot for later
readers, but a reader who already passed it does not get it twice.

The final event is derived from the ``results`` record (its body is exactly the
``GET /api/inference/subtasks/{id}`` body). If the result arrives before ``queued`` or
``running`` was seen, those steps are derived from it too (times from its timings).

Bounded twice: the oldest subtasks (first seen first) are forgotten past ``capacity``
subtasks or past ``max_bytes`` charged, each subtask being charged its events' ``data``
(the final one carries the outputs: with large tensors this, not the count, bounds
memory; until a stream reads it, it is charged a bound of its length: 25 characters a
float, where a float32 logit usually takes 17-20), its metadata and
``SUBTASK_OVERHEAD``. A forgotten subtask leaves its task's log too, or task streams
would keep its outputs alive: a task keeps the ids of its newest ``_TASK_LOG`` events
of subtasks still in the book, for resuming task streams.

Forgetting only unlinks. A subtask stream holds the log it follows, so it still gets
every event filled before, the final one included even when that event is what pushed
the subtask out. The newest subtask is never forgotten for bytes, even one whose final
event alone is past ``max_bytes``: a reader woken by its arrival (``arrived``) must
still find it. It goes when a newer one arrives: the book holds at most ``max_bytes``,
or that one subtask alone. A subtask forgotten before its final event while a stream
still follows it is relinked when its next event or result arrives (a weak reference
keeps it only while a stream holds it), so its follower gets the final event rather than
pings until it gives up. A task stream that had not caught up misses a forgotten
subtask's events.
"""

from __future__ import annotations

import asyncio
import weakref
from bisect import bisect_left
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import msgspec

from schemas.messages import Expired, SubtaskEvent, SubtaskResult, Succeeded
from schemas.state import final_state
from schemas.submit_api import submit_response, success_body_bound

QUEUED, RUNNING, FINAL = 1, 2, 3
#: The events streamed as they come (the final one is derived from the result).
_STREAMED = {"queued": QUEUED, "running": RUNNING}
_TASK_LOG = 10_000
#: How many of a task log's oldest entries are looked through before bisecting it.
_NEAR_FRONT = 8
#: Bytes a subtask holds besides its events' ``data`` and its metadata: the
#: ``SubtaskLog`` with its slots dict, change signal and positions list (as measured; a
#: signal is now made only for a followed subtask, and the positions are a tuple), its book entry,
#: three ``StreamEvent`` objects with their ids and the headers of their strings, and
#: their (position, event) entries in the task's log. Measured with tracemalloc over
#: 20,000 subtasks fed as the tail feeds them (decoded records; queued, running and a
#: small final event each; 100 to 2,000 subtasks a task): 1,670-1,740 bytes. A task's
#: own ``TaskLog`` (about 0.9 KiB, bounded by the count of tasks) is not in here.
SUBTASK_OVERHEAD = 1792
_json = msgspec.json.Encoder()


class StreamEvent(msgspec.Struct, gc=False):
    """One SSE event. A final event's ``data`` (the submit API's body of the result, its
    outputs as JSON) is written when a stream first reads it, not when the result comes
    in: most are never read, and for large outputs writing it was most of what filling
    the book cost (1,024 floats: 36 us a result). Until then the event holds the result
    and is charged ``success_body_bound``, never less than the body it will write.

    Not tracked by the cyclic GC (``gc=False``): the book keeps three a subtask, up to
    hundreds of thousands, and holding only strings, numbers and an untracked result it
    can be part of no cycle."""

    subtask_id: str
    seq: int
    kind: str
    #: The event's data, or None until a final event's is written from ``_result``.
    _data: str | None
    #: When the step happened (ms): the tasks-API view's ``updated_at``.
    at_ms: int = 0
    #: What the book charges for ``data``: its length, or a bound until it is written.
    size: int = -1
    _result: Succeeded | None = None

    def __post_init__(self) -> None:
        if self.size < 0:
            self.size = len(self._data or "")

    @classmethod
    def final(cls, result: SubtaskResult) -> StreamEvent:
        """The final event of ``result``; a success with numeric outputs writes its body
        only when read."""
        kind = final_state(result)
        bound = success_body_bound(result.subtask_id, result) if isinstance(
            result, Succeeded) else None
        if bound is None:
            return cls(result.subtask_id, FINAL, kind, _body(result), result.finished_at_ms)
        assert isinstance(result, Succeeded)
        return cls(result.subtask_id, FINAL, kind, None, result.finished_at_ms, bound, result)

    @property
    def data(self) -> str:
        if self._data is None:
            assert self._result is not None
            self._data, self._result = _body(self._result), None
        return self._data

    @property
    def id(self) -> str:
        return f"{self.subtask_id}:{self.seq}"


def _body(result: SubtaskResult) -> str:
    return _json.encode(submit_response(result.subtask_id, result)).decode()


class _Changed:
    """A broadcast: waiters get the event of the moment; ``fire`` wakes them all.

    The event is made when a reader first asks for it: with nobody following a stream
    (the common case), firing costs nothing, where making an ``asyncio.Event`` per fill
    was most of the book's time. A reader that asked before a fire holds the event that
    fire sets, so no wake-up is lost.
    """

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    @property
    def event(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    def fire(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None


class SubtaskLog:
    """One subtask's events. Of what it holds, only this object stays tracked by the
    cyclic GC while the book keeps it (every collection walks what is tracked and kept,
    so each such object costs every request that keeps one): ``slots`` holds untracked
    events, so CPython never tracks that dict; the change signal is made when a stream
    first follows the subtask; the positions are a tuple of ints, replaced on each fill,
    which the first collection that sees it untracks (a list, or an ``array``, stays
    tracked)."""

    __slots__ = ("subtask_id", "task_id", "account_id", "created_at_ms", "metadata",
                 "slots", "top", "_changed", "charged", "task_positions", "__weakref__")

    def __init__(self, subtask_id: str, task_id: str, account_id: str) -> None:
        self.subtask_id = subtask_id
        self.task_id = task_id
        self.account_id = account_id
        #: The queued event's time (else derived from the result) and the metadata JSON
        #: a ``POST /run`` put on it: what the tasks-API view of each event needs.
        self.created_at_ms = 0
        self.metadata = ""
        self.slots: dict[int, StreamEvent] = {}
        #: The highest seq filled (0: none yet).
        self.top = 0
        self._changed: _Changed | None = None
        #: What the book charges it (``SUBTASK_OVERHEAD``, metadata, events' ``data``).
        self.charged = SUBTASK_OVERHEAD
        #: Positions of its events in its task's log, to take them out when forgotten.
        self.task_positions: tuple[int, ...] = ()

    @property
    def changed(self) -> _Changed:
        if self._changed is None:
            self._changed = _Changed()
        return self._changed

    def fire(self) -> None:
        """Wake whoever follows this subtask (nobody, most often: then nothing to do)."""
        if self._changed is not None:
            self._changed.fire()

    def after(self, seq: int) -> list[StreamEvent]:
        return [self.slots[s] for s in sorted(self.slots) if s > seq]

    @property
    def final(self) -> bool:
        return FINAL in self.slots


@dataclass
class TaskLog:
    account_id: str
    #: (position, event): position counts every event ever appended to this task.
    events: deque[tuple[int, StreamEvent]] = field(
        default_factory=lambda: deque(maxlen=_TASK_LOG))
    count: int = 0
    changed: _Changed = field(default_factory=_Changed)

    def drop(self, subtask_id: str, positions: tuple[int, ...]) -> None:
        """Take out this subtask's events (those still in the log) at ``positions``."""
        events = self.events
        for pos in positions:
            if not events or pos < events[0][0]:
                continue  # already past the log's length
            # The forgotten are the oldest: their events are at or near the front, so
            # look there first (a bisection indexes the deque from its ends each step).
            i = 0
            while i < _NEAR_FRONT and i < len(events) and events[i][0] < pos:
                i += 1
            if i == _NEAR_FRONT:
                i = bisect_left(events, pos, key=_position)
            if i < len(events) and events[i][0] == pos and events[i][1].subtask_id == subtask_id:
                del events[i]


def _position(entry: tuple[int, StreamEvent]) -> int:
    return entry[0]


def parse_event_id(raw: str | None) -> tuple[str, int] | None:
    if not raw:
        return None
    subtask, _, seq = raw.strip().rpartition(":")
    return (subtask, int(seq)) if subtask and seq.isdigit() else None


class EventBook:
    def __init__(self, capacity: int, max_bytes: int) -> None:
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._held = 0
        self._subtasks: OrderedDict[str, SubtaskLog] = OrderedDict()
        self._tasks: OrderedDict[str, TaskLog] = OrderedDict()
        #: Forgotten before their final event, and still held by a stream following them:
        #: relinked when that subtask shows up again, so the stream gets its final event
        #: (otherwise it would wait with pings until the client gave up). Weak: costs
        #: nothing once nobody follows them.
        self._unlinked: weakref.WeakValueDictionary[str, SubtaskLog] = (
            weakref.WeakValueDictionary())
        self.arrived = _Changed()

    @property
    def held_bytes(self) -> int:
        """What the subtasks in the book are charged (what ``max_bytes`` bounds)."""
        return self._held

    def __len__(self) -> int:
        return len(self._subtasks)

    def subtask(self, subtask_id: str) -> SubtaskLog | None:
        return self._subtasks.get(subtask_id)

    def task(self, task_id: str, account_id: str) -> TaskLog:
        log = self._tasks.get(task_id)
        if log is None:
            log = self._tasks[task_id] = TaskLog(account_id)
            if len(self._tasks) > self._capacity:
                self._tasks.popitem(last=False)
        return log

    def _log(self, subtask_id: str, task_id: str, account_id: str) -> SubtaskLog:
        log = self._subtasks.get(subtask_id)
        if log is None:
            log = self._unlinked.pop(subtask_id, None)
            if log is None:
                log = SubtaskLog(subtask_id, task_id, account_id)
            self._subtasks[subtask_id] = log
            self._held += log.charged
            self.arrived.fire()
        return log

    def _charge(self, log: SubtaskLog, size: int) -> None:
        log.charged += size
        self._held += size

    def _trim(self) -> None:
        """Forget the oldest subtasks past either bound; never the newest for bytes.

        Called once an event or result is in, never between the fills it makes: the
        log they fill is then still the book's (or was forgotten with all of them).
        """
        subtasks = self._subtasks
        while len(subtasks) > self._capacity or (
                self._held > self._max_bytes and len(subtasks) > 1):
            _, old = subtasks.popitem(last=False)
            self._held -= old.charged
            if not old.final:
                self._unlinked[old.subtask_id] = old
            task = self._tasks.get(old.task_id)
            if task is not None and old.task_positions:
                task.drop(old.subtask_id, old.task_positions)

    def _fill(self, log: SubtaskLog, event: StreamEvent) -> None:
        if event.seq in log.slots:
            return  # first wins: redelivered events and results change nothing
        log.slots[event.seq] = event
        size = event.size
        log.charged += size
        self._held += size
        log.fire()
        if event.seq < log.top:
            return  # late: task streams keep each subtask's ids monotonic, so skip it there
        log.top = event.seq
        task = self.task(log.task_id, log.account_id)
        log.task_positions = (*log.task_positions, task.count)
        task.events.append((task.count, event))
        task.count += 1
        task.changed.fire()

    def add_event(self, ev: SubtaskEvent) -> None:
        seq = _STREAMED.get(ev.kind)
        if seq is None:
            return  # progress and log events are not streamed yet
        log = self._log(ev.subtask_id, ev.task_id, ev.account_id)
        if seq == QUEUED:  # the real step's time and metadata win over derived ones
            log.created_at_ms = ev.at_ms
            if not log.metadata:
                log.metadata = ev.message
                self._charge(log, len(ev.message))
        body = {"id": ev.subtask_id, "taskId": ev.task_id, "state": ev.kind, "atMs": ev.at_ms}
        self._fill(log, StreamEvent(ev.subtask_id, seq, ev.kind, _json.encode(body).decode(),
                                    ev.at_ms))
        self._trim()

    def add_result(self, result: SubtaskResult) -> None:
        log = self._log(result.subtask_id, result.task_id, result.account_id)
        if not log.created_at_ms:
            log.created_at_ms = result.finished_at_ms - int(result.timings.total_ms)
        if QUEUED not in log.slots:
            # Events and results are different topics: on Kafka the result can be read
            # before `queued`. Derive the step, so every stream reads queued, running,
            # final in that order whatever arrives first.
            body = {"id": result.subtask_id, "taskId": result.task_id, "state": "queued",
                    "atMs": log.created_at_ms}
            self._fill(log, StreamEvent(result.subtask_id, QUEUED, "queued",
                                        _json.encode(body).decode(), log.created_at_ms))
        if RUNNING not in log.slots and not isinstance(result, Expired) and result.runner_id:
            started = result.finished_at_ms - int(result.timings.total_ms
                                                   - result.timings.queued_ms)
            body = {"id": result.subtask_id, "taskId": result.task_id, "state": "running",
                    "atMs": started}
            self._fill(log, StreamEvent(result.subtask_id, RUNNING, "running",
                                        _json.encode(body).decode(), started))
        self._fill(log, StreamEvent.final(result))
        self._trim()
