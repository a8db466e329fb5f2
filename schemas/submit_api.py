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


submit_body_decoder = msgspec.json.Decoder(SubmitBody)
json_encoder = msgspec.json.Encoder()


def describe_decode_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> str:
    """A client-facing message for a body that did not decode."""
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        return f"invalid request body: {text}"
    return f"request body is not valid JSON: {text}"
