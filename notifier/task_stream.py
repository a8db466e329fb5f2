"""The tasks-API view of one subtask's lifecycle: the events of ``GET /tasks/{id}/stream``.

The same steps and ids as the subtask stream (``<subtask>:<1|2|3>``, so
``Last-Event-ID`` resumes without gaps or repeats, on any replica), named as tasks-API
clients expect: ``update`` for queued and running, ``done`` when it completed, ``error``
when it ended any other way (failed, expired or cancelled: the data's status says
which). Each event's data is the task DTO as it stood at that step, the body
``GET /tasks/{id}`` answers then, in the caller's API version (bare with
``X-API-Version: 2``, else the version-1 wrapper).
"""

from __future__ import annotations

from typing import Any

import msgspec
from sse_starlette import ServerSentEvent

from notifier.book import FINAL, QUEUED, StreamEvent, SubtaskLog
from schemas.submit_api import SubmitResponse
from schemas.tasks_api import COMPLETED, STATUS, task_dto, versioned_body
from schemas.tasks_api import QUEUED as QUEUED_STATUS
from schemas.tasks_api import RUNNING as RUNNING_STATUS

_final_body = msgspec.json.Decoder(SubmitResponse)
_json = msgspec.json.Encoder()


def task_event(log: SubtaskLog, ev: StreamEvent, v2: bool) -> ServerSentEvent:
    output: dict[str, Any] | None = None
    error: str | None = None
    if ev.seq == FINAL:
        status = STATUS[ev.kind]
        body = _final_body.decode(ev.data)  # the submit API's body of the result
        if status == COMPLETED:
            name, output = "done", body.data
        else:
            name, error = "error", body.error
    else:
        name = "update"
        status = QUEUED_STATUS if ev.seq == QUEUED else RUNNING_STATUS
    dto = task_dto(log.subtask_id, status=status,
                   created_at_ms=log.created_at_ms or ev.at_ms, updated_at_ms=ev.at_ms,
                   task_id=log.task_id, output=output, error=error, metadata=log.metadata)
    return ServerSentEvent(data=_json.encode(versioned_body(dto, v2)).decode(), event=name,
                           id=ev.id)
