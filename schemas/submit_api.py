"""HTTP bodies of the submit API (``POST /api/inference/tasks/{taskId}``).

Strict at the edge: unknown fields are rejected with a message that names them.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from schemas.messages import SubtaskResult, Succeeded
from schemas.tensors import decode_tensor
from schemas.webhooks import FinalEvent, WebhookTarget

PayloadType = Literal["Json", "Text", "Binary"]


class Binding(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    tensorName: str  # noqa: N815 - the documented wire name
    payloadType: PayloadType  # noqa: N815
    payload: str | None = None
    fileUrl: str | None = None  # noqa: N815


class WebhookSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``"webhook": {"url", "events"}``: where the final event is delivered."""

    url: str
    #: Final states to deliver; omitted or empty: all of them.
    events: tuple[FinalEvent, ...] = ()

    def target(self) -> WebhookTarget:
        return WebhookTarget(url=self.url, events=self.events)


class SubmitBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    bindings: tuple[Binding, ...]
    webhook: WebhookSpec | None = None


class SubmitResponse(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    id: str
    state: Literal["success", "failed", "pending"]
    data: dict[str, Any] | None = None
    error: str | None = None


def submit_response(subtask_id: str, result: SubtaskResult | None) -> SubmitResponse:
    """The body of ``GET /api/inference/subtasks/{id}`` (also the final event's body)."""
    if result is None:
        return SubmitResponse(id=subtask_id, state="pending")
    if isinstance(result, Succeeded):
        data: dict[str, Any] = {t.name: decode_tensor(t).tolist() for t in result.outputs}
        return SubmitResponse(id=subtask_id, state="success", data=data)
    return SubmitResponse(id=subtask_id, state="failed", error=result.error)


class FinalEventBody(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """A final event's ``body`` on ``events``: the GET body without ``data``. Outputs
    travel once, on ``results``; written again here as JSON they were the runner's
    largest cost per request with large tensors."""

    id: str
    state: Literal["success", "failed"]
    error: str | None = None


def final_event_body(subtask_id: str, result: SubtaskResult) -> FinalEventBody:
    if isinstance(result, Succeeded):
        return FinalEventBody(id=subtask_id, state="success")
    return FinalEventBody(id=subtask_id, state="failed", error=result.error)


#: The longest JSON text of one element of each numeric dtype, as ``tolist`` values
#: encode: a double's repr at most (``-2.2250738585072014e-308``; NaN and ±inf are
#: ``null``), an integer's digits and sign, ``false``.
_MAX_ELEMENT_CHARS = {
    "float16": 24, "float32": 24, "float64": 24, "bool": 5,
    "int8": 4, "uint8": 3, "int16": 6, "uint16": 5, "int32": 11, "uint32": 10,
    "int64": 20, "uint64": 20,
}
#: ``{"id":…,"state":"success","data":{…},"error":null}`` around the id and outputs.
_ENVELOPE_CHARS = 64


def success_body_bound(subtask_id: str, result: Succeeded) -> int | None:
    """At least the length of ``submit_response(subtask_id, result)`` as JSON, without
    writing it (None where outputs hold strings, whose escaping has no cheap bound)."""
    size = _ENVELOPE_CHARS + len(json_encoder.encode(subtask_id))
    for t in result.outputs:
        per = _MAX_ELEMENT_CHARS.get(t.dtype)
        if per is None:
            return None
        lists, width = 1, 1  # nested lists: one per element of every outer dimension
        for d in t.shape[:-1]:
            width *= d
            lists += width
        elements = width * (t.shape[-1] if t.shape else 1)
        size += len(json_encoder.encode(t.name)) + 2 + 3 * lists + (per + 1) * elements
    return size


submit_body_decoder = msgspec.json.Decoder(SubmitBody)
json_encoder = msgspec.json.Encoder()


def describe_decode_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> str:
    """A client-facing message for a body that did not decode."""
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        return f"invalid request body: {text}"
    return f"request body is not valid JSON: {text}"
