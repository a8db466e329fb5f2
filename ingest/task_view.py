"""One subtask as the tasks API shows it: status, DTO, timings and lifecycle lines.

The same subtask the submit API returns (one core, two views): its final state comes
from the result book, its earlier states from the lifecycle view (every replica's
events) or, for one submitted here a moment ago, from the submit core.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ingest.context import IngestContext
from ingest.errors import NotFound
from ingest.lifecycle import Lifecycle
from schemas.messages import SubtaskResult, Succeeded
from schemas.state import final_state
from schemas.submit_api import submit_response
from schemas.tasks_api import (
    QUEUED,
    RUNNING,
    STATUS,
    LogLine,
    TaskDTO,
    TimingsDTO,
    rfc3339,
)
from schemas.tasks_api import task_dto as shape_task_dto


@dataclass(frozen=True, slots=True)
class TaskState:
    subtask_id: str
    account_id: str
    task_id: str
    status: int
    created_at_ms: int
    updated_at_ms: int
    result: SubtaskResult | None
    lifecycle: Lifecycle | None


def task_state(ctx: IngestContext, subtask_id: str, account: str,
               result: SubtaskResult | None = None) -> TaskState:
    """The subtask's state (``result``: its result, when the caller already holds it);
    NotFound if unknown here or another account's."""
    result = result or ctx.results.get(subtask_id)
    lc = ctx.lifecycle.get(subtask_id)
    if result is not None:
        owner = result.account_id
    elif lc is not None:
        owner = lc.account_id
    else:
        owner = ctx.core.pending_account(subtask_id) or ""
    if owner != account:
        raise NotFound(f"task {subtask_id} not found")
    now = int(time.time() * 1000)
    created = lc.created_at_ms if lc is not None and lc.created_at_ms else 0
    if result is not None:
        status = STATUS[final_state(result)]
        updated = result.finished_at_ms or now
        if not created:
            created = updated - int(result.timings.total_ms)
    else:
        status = RUNNING if lc is not None and lc.running else QUEUED
        updated = lc.updated_at_ms if lc is not None and lc.updated_at_ms else now
        created = created or updated
    task_id = result.task_id if result is not None else (lc.task_id if lc else "")
    return TaskState(subtask_id, account, task_id, status, created, updated, result, lc)


def task_dto(st: TaskState) -> TaskDTO:
    output: dict[str, Any] | None = None
    error: str | None = None
    if st.result is not None:
        body = submit_response(st.subtask_id, st.result)
        if isinstance(st.result, Succeeded):
            output = body.data
        else:
            error = body.error
    return shape_task_dto(st.subtask_id, status=st.status, created_at_ms=st.created_at_ms,
                          updated_at_ms=st.updated_at_ms, task_id=st.task_id, output=output,
                          error=error,
                          metadata=st.lifecycle.metadata if st.lifecycle is not None else "")


def timings_dto(st: TaskState) -> TimingsDTO:
    if st.result is None:
        return TimingsDTO(id=st.subtask_id, status=st.status)
    t = st.result.timings
    return TimingsDTO(id=st.subtask_id, status=st.status, queued=round(t.queued_ms, 3),
                      batch_wait=round(t.batch_wait_ms, 3), fetch=round(t.fetch_ms, 3),
                      inference=round(t.inference_ms, 3), total=round(t.total_ms, 3),
                      batch_size=t.batch_size)


def log_lines(st: TaskState) -> list[LogLine]:
    lines = [] if st.lifecycle is None else list(st.lifecycle.lines)
    if not lines:
        lines.append((st.created_at_ms, "queued"))
    r = st.result
    if r is not None:
        state = final_state(r)
        on = f" on {r.runner_id}" if r.runner_id else ""
        if isinstance(r, Succeeded):
            text = f"completed{on} in {r.timings.total_ms:.1f} ms"
        else:
            text = f"{state}{on}: {r.error}"
        lines.append((r.finished_at_ms or st.updated_at_ms, text))
    return [LogLine(at=rfc3339(at), message=m) for at, m in lines]
