"""HTTP bodies of the submit API (``POST /api/inference/tasks/{taskId}``).

Strict at the edge: unknown fields are rejected with a message that names them.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

PayloadType = Literal["Json", "Text", "Binary"]


class Binding(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    tensorName: str  # noqa: N815 - the documented wire name
    payloadType: PayloadType  # noqa: N815
    payload: str | None = None
    fileUrl: str | None = None  # noqa: N815


class SubmitBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    bindings: tuple[Binding, ...]


class SubmitResponse(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    id: str
    state: Literal["success", "failed", "pending"]
    data: dict[str, Any] | None = None
    error: str | None = None


submit_body_decoder = msgspec.json.Decoder(SubmitBody)
json_encoder = msgspec.json.Encoder()


def describe_decode_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> str:
    """A client-facing message for a body that did not decode."""
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        return f"invalid request body: {text}"
    return f"request body is not valid JSON: {text}"
