"""HTTP bodies of the tasks API (``POST /run``, ``/tasks/{id}``, engines, files).

Statuses are the integers that tasks-API clients use; inferq's subtask states map onto
them as ``STATUS`` below (``expired``: it never ran, so it is ``failed`` with an error
saying why). Times are RFC 3339 UTC strings with milliseconds.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from schemas.submit_api import WebhookSpec

RECEIVED, QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = 1, 2, 7, 10, 11, 12

STATUS_NAMES = {RECEIVED: "received", QUEUED: "queued", RUNNING: "running",
                COMPLETED: "completed", FAILED: "failed", CANCELLED: "cancelled"}
#: inferq subtask state -> tasks-API status.
STATUS = {"received": RECEIVED, "queued": QUEUED, "running": RUNNING,
          "succeeded": COMPLETED, "failed": FAILED, "expired": FAILED,
          "cancelled": CANCELLED}
FINAL_STATUSES = (COMPLETED, FAILED, CANCELLED)


def rfc3339(ms: int) -> str:
    t = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class RunBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /run``: ``app`` is a task id or a model ``name[:version]``."""

    app: str
    #: Tensor name -> value: nested lists or numbers (Json), a string (Text for string
    #: tensors), or ``{"fileUrl": ...}`` (Binary: an uploaded file or an http(s) .npy).
    input: dict[str, Any]
    webhook: str | WebhookSpec | None = None
    #: False (default): answer at once; true: wait like the synchronous submit.
    wait: bool = False
    #: Kept with the task and returned in its DTO (at most 4 KiB as JSON).
    metadata: dict[str, Any] | None = None


class TaskDTO(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    status: int
    status_name: str
    created_at: str
    updated_at: str
    app: str | None = None
    output: dict[str, Any] | None = None
    error: str | None = None
    metadata: dict[str, Any] | None = None


def task_dto(subtask_id: str, *, status: int, created_at_ms: int, updated_at_ms: int,
             task_id: str = "", output: dict[str, Any] | None = None,
             error: str | None = None, metadata: str = "") -> TaskDTO:
    """The task DTO, shaped the same wherever it is served (``GET /tasks/{id}`` in
    ingest, ``GET /tasks/{id}/stream`` in the notifier). ``metadata`` is the JSON text a
    ``POST /run`` kept with the task; text that does not decode is left out."""
    meta: dict[str, Any] | None = None
    if metadata:
        try:
            meta = msgspec.json.decode(metadata)
        except msgspec.DecodeError:
            meta = None
    return TaskDTO(id=subtask_id, status=status, status_name=STATUS_NAMES[status],
                   created_at=rfc3339(created_at_ms), updated_at=rfc3339(updated_at_ms),
                   app=task_id or None, output=output, error=error, metadata=meta)


def versioned_body(body: Any, v2: bool, status: int = 200) -> Any:
    """A success body: bare with ``X-API-Version: 2``, else the version-1 wrapper."""
    return body if v2 else {"success": True, "status": status, "data": body}


ERROR_TYPE_BASE = "https://inferq.dev/errors/"
ERROR_TITLES = {
    "unauthorized": "Unauthorized",
    "forbidden": "Forbidden",
    "not_found": "Not Found",
    "invalid_request": "Invalid Request",
    "rate_limited": "Too Many Requests",
    "internal_error": "Internal Server Error",
    "overloaded": "Service Overloaded",
    "unavailable": "Service Unavailable",
}


def error_body(status: int, code: str, message: str, v2: bool) -> tuple[dict[str, Any], str]:
    """An error body and its media type: RFC 9457 problem+json with ``X-API-Version: 2``,
    else the version-1 wrapper."""
    if v2:
        return ({"type": ERROR_TYPE_BASE + code, "title": ERROR_TITLES.get(code, "Error"),
                 "status": status, "detail": message}, "application/problem+json")
    return ({"success": False, "status": status, "error": {"code": code, "message": message}},
            "application/json")


class TaskStatusDTO(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: int
    updated_at: str


class CancelDTO(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: int
    #: True when the cancel was accepted (the task was not final yet).
    cancelled: bool


class TimingsDTO(msgspec.Struct, frozen=True, kw_only=True):
    """In milliseconds; null until the task is final."""

    id: str
    status: int
    queued: float | None = None
    batch_wait: float | None = None
    fetch: float | None = None
    inference: float | None = None
    total: float | None = None
    batch_size: int | None = None


class LogLine(msgspec.Struct, frozen=True, kw_only=True):
    at: str
    message: str


class LogsDTO(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    logs: list[LogLine]


class EngineDTO(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    host: str
    device: str
    providers: list[str]
    models_loaded: list[str]
    #: Loading now: loaded at a request for them, they answer once this is done.
    models_loading: list[str]
    in_flight: int
    last_seen: str
    #: ``running`` or ``draining``.
    state: str


class EngineCommandDTO(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    action: str
    accepted: bool


class FileDTO(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    #: What a Binary binding's ``fileUrl`` names to use it (read by runners from the
    #: shared files directory, never fetched over the network).
    uri: str
    filename: str
    content_type: str
    size: int
    sha256: str
    created_at: str


run_body_decoder = msgspec.json.Decoder(RunBody)
