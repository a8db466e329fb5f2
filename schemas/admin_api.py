"""HTTP bodies of the admin API (keys, models, tasks)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from schemas.submit_api import WebhookSpec


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
