"""HTTP bodies of the admin API (keys, models, tasks)."""

from __future__ import annotations

import msgspec


class CreateKey(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account: str | None = None
    name: str = ""


class RotateKey(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: Seconds the old key keeps working after rotation.
    graceSeconds: float = 0.0  # noqa: N815


class CreateTask(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account: str
    model: str
    name: str = ""
    fillBindingsViaApi: bool = True  # noqa: N815


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
