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

Bounded: the oldest subtasks are forgotten past ``capacity``; a task keeps the ids of
its newest ``_TASK_LOG`` events for resuming task streams.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import msgspec

from schemas.messages import Expired, SubtaskEvent, SubtaskResult
from schemas.state import final_state
from schemas.submit_api import submit_response

QUEUED, RUNNING, FINAL = 1, 2, 3
_TASK_LOG = 10_000
_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class StreamEvent:
    subtask_id: str
    seq: int
    kind: str
    data: str
    #: When the step happened (ms): the tasks-API view's ``updated_at``.
    at_ms: int = 0

    @property
    def id(self) -> str:
        return f"{self.subtask_id}:{self.seq}"


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


@dataclass
class SubtaskLog:
    subtask_id: str
    task_id: str
    account_id: str
    #: The queued event's time (else derived from the result) and the metadata JSON a
    #: ``POST /run`` put on it: what the tasks-API view of each event needs.
    created_at_ms: int = 0
    metadata: str = ""
    slots: dict[int, StreamEvent] = field(default_factory=dict)
    changed: _Changed = field(default_factory=_Changed)

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


def parse_event_id(raw: str | None) -> tuple[str, int] | None:
    if not raw:
        return None
    subtask, _, seq = raw.strip().rpartition(":")
    return (subtask, int(seq)) if subtask and seq.isdigit() else None


class EventBook:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._subtasks: OrderedDict[str, SubtaskLog] = OrderedDict()
        self._tasks: OrderedDict[str, TaskLog] = OrderedDict()
        self.arrived = _Changed()

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
            log = self._subtasks[subtask_id] = SubtaskLog(subtask_id, task_id, account_id)
            if len(self._subtasks) > self._capacity:
                self._subtasks.popitem(last=False)
            self.arrived.fire()
        return log

    def _fill(self, log: SubtaskLog, event: StreamEvent) -> None:
        if event.seq in log.slots:
            return  # first wins: redelivered events and results change nothing
        log.slots[event.seq] = event
        log.changed.fire()
        if event.seq < max(log.slots):
            return  # late: task streams keep each subtask's ids monotonic, so skip it there
        task = self.task(log.task_id, log.account_id)
        task.events.append((task.count, event))
        task.count += 1
        task.changed.fire()

    def add_event(self, ev: SubtaskEvent) -> None:
        seq = {"queued": QUEUED, "running": RUNNING}.get(ev.kind)
        if seq is None:
            return  # progress and log events are not streamed yet
        log = self._log(ev.subtask_id, ev.task_id, ev.account_id)
        if seq == QUEUED:  # the real step's time and metadata win over derived ones
            log.created_at_ms = ev.at_ms
            log.metadata = log.metadata or ev.message
        body = {"id": ev.subtask_id, "taskId": ev.task_id, "state": ev.kind, "atMs": ev.at_ms}
        self._fill(log, StreamEvent(ev.subtask_id, seq, ev.kind, _json.encode(body).decode(),
                                    ev.at_ms))

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
        data = _json.encode(submit_response(result.subtask_id, result)).decode()
        self._fill(log, StreamEvent(result.subtask_id, FINAL, final_state(result), data,
                                    result.finished_at_ms))
