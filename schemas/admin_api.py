"""HTTP bodies of the admin API (keys, models, tasks)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from schemas.registry import MAX_BATCH_SIZE, MAX_QUEUE_DELAY_MS
from schemas.submit_api import WebhookSpec

# The ranges are checked by the handlers (``schemas.registry.batch_size_problem``), whose
# message names the field and both bounds; here they only document the schema.
BatchSize = Annotated[int, msgspec.Meta(
    description="Rows a dynamic batch may hold (1: never batched); null: the default",
    extra_json_schema={"minimum": 1, "maximum": MAX_BATCH_SIZE})]
QueueDelayMs = Annotated[float, msgspec.Meta(
    description="Longest a partial batch waits for more requests, in ms; null: the default",
    extra_json_schema={"minimum": 0, "maximum": MAX_QUEUE_DELAY_MS})]


class CreateKey(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account: str | None = None
    name: str = ""


class RotateKey(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: Seconds the old key keeps working after rotation (at most 30 days).
    graceSeconds: Annotated[float, msgspec.Meta(ge=0, le=30 * 86400)] = 0.0  # noqa: N815


class CreateTask(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account: str
    model: str
    name: str = ""
    fillBindingsViaApi: bool = True  # noqa: N815
    #: The task's default webhook (a request's own ``webhook`` overrides it).
    webhook: WebhookSpec | None = None
    #: Dynamic batching of its requests, each over its model's; null: the model's.
    maxBatchSize: BatchSize | None = None  # noqa: N815
    maxQueueDelayMs: QueueDelayMs | None = None  # noqa: N815


class BatchingPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A JSON merge patch (RFC 7396) of a model's or a task's batching: a field left out
    stays as it is, null clears it (the task falls back to its model's, the model to the
    runner's default)."""

    maxBatchSize: BatchSize | None | msgspec.UnsetType = msgspec.UNSET  # noqa: N815
    maxQueueDelayMs: QueueDelayMs | None | msgspec.UnsetType = msgspec.UNSET  # noqa: N815


class RotateWebhookSecret(msgspec.Struct, frozen=True, kw_only=True,
                          forbid_unknown_fields=True):
    #: Seconds the previous secret keeps signing (deliveries carry both meanwhile).
    graceSeconds: float = 0.0  # noqa: N815


class KeyView(msgspec.Struct, frozen=True, kw_only=True):
    keyId: str  # noqa: N815
    account: str
    name: str
    createdAtMs: int  # noqa: N815
    revokedAtMs: int | None = None  # noqa: N815


class TaskView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    account: str
    name: str
    model: str
    fillBindingsViaApi: bool  # noqa: N815
    submitUrl: str  # noqa: N815
    #: The task's own batching limits; null: its model's (or the runner's default).
    maxBatchSize: int | None = None  # noqa: N815
    maxQueueDelayMs: float | None = None  # noqa: N815
