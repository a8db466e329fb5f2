"""SSE streams of subtask and task lifecycles, and the deliveries list, over HTTP.

Authenticated like the rest of the API (``X-Api-Key`` or ``Authorization: Bearer``),
against the notifier's own registry view. A subtask or task of another account is
answered exactly like a missing one: 404.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bus.registry_view import RegistryView
from notifier.book import EventBook, StreamEvent, SubtaskLog, TaskLog, parse_event_id
from notifier.deliveries import DeliveryLog
from notifier.settings import NotifierSettings
from notifier.task_stream import task_event
from schemas.tasks_api import error_body

_json = msgspec.json.Encoder()


def error(status: int, code: str, message: str, v2: bool = False) -> Response:
    """The version-1 error wrapper; RFC 9457 problem+json when ``v2`` (tasks-API routes
    whose caller sent ``X-API-Version: 2``)."""
    body, media = error_body(status, code, message, v2)
    return Response(_json.encode(body), status, media_type=media)


def _api_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _sse(ev: StreamEvent) -> ServerSentEvent:
    return ServerSentEvent(data=ev.data, event=ev.kind, id=ev.id)


class Streams:
    def __init__(self, settings: NotifierSettings, book: EventBook, registry: RegistryView,
                 deliveries: DeliveryLog) -> None:
        self._settings = settings
        self._book = book
        self._registry = registry
        self._deliveries = deliveries
        self.open_streams = 0
        self.closing = asyncio.Event()

    def routes(self) -> list[Route]:
        return [
            Route("/api/inference/subtasks/{subtask_id}/events", self.subtask_events,
                  methods=["GET"]),
            Route("/api/inference/tasks/{task_id}/events", self.task_events, methods=["GET"]),
            Route("/api/inference/subtasks/{subtask_id}/deliveries", self.deliveries,
                  methods=["GET"]),
            Route("/tasks/{id}/stream", self.task_stream, methods=["GET"]),
        ]

    async def _account(self, request: Request, v2: bool = False) -> str | Response:
        key = _api_key(request)
        if not key:
            return error(401, "unauthorized",
                         "missing API key: send it in the X-Api-Key header", v2)
        account = await self._registry.account_for_soon(key)
        return account if account is not None else error(401, "unauthorized",
                                                         "invalid API key", v2)

    async def _find(self, subtask_id: str, account: str) -> SubtaskLog | None:
        """The subtask's log; waits a little for one submitted a moment ago."""
        deadline = time.monotonic() + self._settings.sse_unknown_wait_s
        while True:
            arrived = self._book.arrived.event
            log = self._book.subtask(subtask_id)
            if log is not None:
                return log if log.account_id == account else None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(arrived.wait(), remaining)
            except TimeoutError:
                return None

    def _stream(self, events: AsyncIterator[ServerSentEvent], v2: bool = False) -> Response:
        if self.open_streams >= self._settings.sse_max_streams:
            return error(503, "overloaded", "too many open event streams; retry shortly", v2)
        return EventSourceResponse(events, ping=self._settings.sse_ping_s,
                                   headers={"Cache-Control": "no-store"},
                                   send_timeout=30)

    async def subtask_events(self, request: Request) -> Response:
        account = await self._account(request)
        if isinstance(account, Response):
            return account
        subtask_id = request.path_params["subtask_id"]
        log = await self._find(subtask_id, account)
        if log is None:
            return error(404, "not_found", f"subtask {subtask_id} not found")
        last = parse_event_id(request.headers.get("last-event-id"))
        seq = last[1] if last is not None and last[0] == subtask_id else 0
        return self._stream(self._follow_subtask(log, seq))

    async def _follow_subtask(self, log: SubtaskLog, seq: int,
                              shape: Callable[[StreamEvent], ServerSentEvent] = _sse,
                              ) -> AsyncIterator[ServerSentEvent]:
        self.open_streams += 1
        try:
            while not self.closing.is_set():
                changed = log.changed.event
                for ev in log.after(seq):
                    seq = ev.seq
                    yield shape(ev)
                if log.final:
                    return  # the subtask stream ends after its final event
                await self._wait(changed)
        finally:
            self.open_streams -= 1

    async def task_stream(self, request: Request) -> Response:
        """``GET /tasks/{id}/stream``: one subtask's lifecycle in the tasks API's terms
        (``notifier.task_stream``); errors in the caller's API version."""
        v2 = request.headers.get("x-api-version", "").strip() == "2"
        account = await self._account(request, v2)
        if isinstance(account, Response):
            return account
        subtask_id = request.path_params["id"]
        log = await self._find(subtask_id, account)
        if log is None:
            return error(404, "not_found", f"task {subtask_id} not found", v2)
        last = parse_event_id(request.headers.get("last-event-id"))
        seq = last[1] if last is not None and last[0] == subtask_id else 0
        return self._stream(self._follow_subtask(log, seq, lambda ev: task_event(log, ev, v2)),
                            v2)

    async def task_events(self, request: Request) -> Response:
        account = await self._account(request)
        if isinstance(account, Response):
            return account
        task_id = request.path_params["task_id"]
        task = self._registry.tasks.get(task_id)
        if task is None or task.account_id != account:
            return error(404, "not_found", f"task {task_id} not found")
        log = self._book.task(task_id, account)
        last = request.headers.get("last-event-id")
        return self._stream(self._follow_task(log, last))

    async def _follow_task(self, log: TaskLog, last: str | None) -> AsyncIterator[ServerSentEvent]:
        """Live events of every subtask of the task; with Last-Event-ID, those after it.

        An id this notifier no longer holds (another replica, or older than the log)
        replays the whole log: repeats are better than gaps, and ids make them visible.
        """
        if last is None:
            cursor = log.count
        else:
            cursor = next((pos + 1 for pos, ev in log.events if ev.id == last), 0)
        self.open_streams += 1
        try:
            while not self.closing.is_set():
                changed = log.changed.event
                for pos, ev in list(log.events):
                    if pos >= cursor:
                        cursor = pos + 1
                        yield _sse(ev)
                await self._wait(changed)
        finally:
            self.open_streams -= 1

    async def _wait(self, changed: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(changed.wait()),
                 asyncio.ensure_future(self.closing.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def deliveries(self, request: Request) -> Response:
        account = await self._account(request)
        if isinstance(account, Response):
            return account
        subtask_id = request.path_params["subtask_id"]
        attempts = self._deliveries.get(subtask_id)
        if attempts is not None:
            known = attempts.account_id == account
        else:  # no attempt yet: the subtask must exist and be this account's
            known = await self._find(subtask_id, account) is not None
        if not known:
            return error(404, "not_found", f"subtask {subtask_id} not found")
        body: list[dict[str, Any]] = [] if attempts is None else attempts.view()
        return Response(_json.encode(body), 200, media_type="application/json")
