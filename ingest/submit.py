"""The one submit core behind every API dialect: publish a request, wait for its result."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bus.base import Bus, BusError
from bus.topics import TopicNames
from ingest.errors import NotFound, Unavailable
from ingest.results import ResultBook
from obs.random_ids import uuid4
from obs.tracing import new_traceparent, parse_traceparent
from schemas.messages import (
    MESSAGE_HEADERS,
    InferenceRequest,
    ModelRef,
    SubtaskEvent,
    SubtaskResult,
    UrlInput,
    encode,
)
from schemas.registry import ModelRecord, TaskRecord, batching_limits, model_uri
from schemas.tensors import Tensor

log = logging.getLogger(__name__)

_MAX_PENDING = 1_000_000


@dataclass(frozen=True, slots=True)
class Submitted:
    subtask_id: str
    account_id: str
    task_id: str


class SubmitCore:
    def __init__(
        self, bus: Bus, topics: TopicNames, results: ResultBook, *, deadline_s: float,
        model_base_url: str = "",
    ) -> None:
        self._bus = bus
        self._model_base_url = model_base_url
        self._topics = topics
        self.results = results
        self._deadline_s = deadline_s
        # Subtasks submitted here and not yet finished, so GET can answer `pending`.
        self._pending: OrderedDict[str, Submitted] = OrderedDict()
        #: Called with the seconds from publish to result of every answered sync call
        #: (the end-to-end latency histogram).
        self.on_answered: Callable[[float], None] | None = None

    async def run(
        self, req: InferenceRequest, timeout_s: float, traceparent: str | None = None,
        metadata: str = "",
    ) -> SubtaskResult | None:
        """Publish ``req`` and wait up to ``timeout_s`` for its result (None: pending)."""
        fut = self.results.expect(req.subtask_id)
        started = time.perf_counter()
        try:
            await self.publish(req, traceparent, metadata)
        except BaseException:
            self.results.forget(req.subtask_id)
            raise
        if timeout_s <= 0:
            self.results.forget(req.subtask_id)
            return None
        result = await self.results.wait(req.subtask_id, fut, timeout_s)
        if result is not None and self.on_answered is not None:
            self.on_answered(time.perf_counter() - started)
        return result

    def request(
        self,
        *,
        account_id: str,
        task: TaskRecord,
        model: ModelRecord,
        inputs: tuple[Tensor, ...],
        url_inputs: tuple[UrlInput, ...] = (),
        outputs: Sequence[str] = (),
    ) -> InferenceRequest:
        """A new request of ``task`` on ``model``, with its deadline and the batching
        limits of the task, else of the model (else the runner's own)."""
        now_us = time.time_ns() // 1000
        now = now_us // 1000
        max_batch_size, max_queue_delay_ms = batching_limits(task, model)
        return InferenceRequest(
            subtask_id=uuid4(),
            task_id=task.id,
            account_id=account_id,
            model=ModelRef(name=model.name, version=model.version,
                           uri=model_uri(model, self._model_base_url),
                           sha256=model.sha256, size=model.size),
            inputs=inputs,
            url_inputs=url_inputs,
            outputs=tuple(outputs),
            created_at_ms=now,
            created_at_us=now_us,
            deadline_ms=now + int(self._deadline_s * 1000),
            max_batch_size=max_batch_size,
            max_queue_delay_ms=max_queue_delay_ms,
        )

    async def publish(self, req: InferenceRequest, traceparent: str | None = None,
                      metadata: str = "") -> None:
        """Publish ``req`` and its ``queued`` event (whose message carries ``metadata``,
        the JSON a tasks-API ``POST /run`` attached, so every replica can show it)."""
        headers = (
            *MESSAGE_HEADERS,
            # A client's malformed traceparent is replaced, never passed downstream.
            ("traceparent", (traceparent if traceparent and parse_traceparent(traceparent)
                             else new_traceparent()).encode()),
            ("model", f"{req.model.name}:{req.model.version}".encode()),
            ("task", req.task_id.encode()),
        )
        key = req.subtask_id.encode()
        event = SubtaskEvent(subtask_id=req.subtask_id, task_id=req.task_id,
                             account_id=req.account_id, kind="queued", at_ms=req.created_at_ms,
                             message=metadata)
        self._pending[req.subtask_id] = Submitted(req.subtask_id, req.account_id, req.task_id)
        if len(self._pending) > _MAX_PENDING:
            self._pending.popitem(last=False)
        try:
            self._bus.publish_soon(self._topics.events, key, encode(event), headers[:3])
            await self._bus.publish(self._topics.requests, key, encode(req), headers)
        except BusError as exc:
            self._pending.pop(req.subtask_id, None)
            raise Unavailable(f"the request could not be queued: {exc}") from exc
        log.debug("queued", extra={"subtask_id": req.subtask_id, "task_id": req.task_id})

    def finished(self, subtask_id: str) -> None:
        """Its result is in the book, which answers for it from now on (and once the book
        forgets it, it is unknown here, as on every other replica, not ``pending``)."""
        self._pending.pop(subtask_id, None)

    def pending_account(self, subtask_id: str) -> str | None:
        """The account of a subtask submitted here and not yet seen finished."""
        pending = self._pending.get(subtask_id)
        return None if pending is None else pending.account_id

    def lookup(self, subtask_id: str, account_id: str) -> SubtaskResult | None:
        """The result, or None while pending; NotFound if unknown or another account's."""
        result = self.results.get(subtask_id)
        if result is not None:
            if result.account_id != account_id:
                raise NotFound(f"subtask {subtask_id} not found")
            return result
        pending = self._pending.get(subtask_id)
        if pending is None or pending.account_id != account_id:
            raise NotFound(f"subtask {subtask_id} not found")
        return None
