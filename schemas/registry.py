"""Registry records: API keys, models and tasks, as kept on the compacted registry topic.

The topic key says what a record is (``key:<id>``, ``model:<id>``, ``task:<id>``); a
null value is a tombstone. Values are a tagged union so one decoder reads them all.
"""

from __future__ import annotations

import hashlib

import msgspec

from schemas.webhooks import WebhookSecret, WebhookTarget


class TensorSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One input or output of a model's graph; ``-1`` marks a dynamic dimension."""

    name: str
    dtype: str
    shape: tuple[int, ...]


class ModelRecord(msgspec.Struct, frozen=True, kw_only=True, tag="model"):
    """An ONNX model file in the model store, with the signature read from its graph."""

    name: str
    version: str
    sha256: str
    uri: str
    size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    created_at_ms: int

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"


class ApiKeyRecord(msgspec.Struct, frozen=True, kw_only=True, tag="key"):
    """An API key, stored as the SHA-256 of the whole key; the key itself is never kept."""

    key_id: str
    account_id: str
    key_hash: str
    name: str = ""
    created_at_ms: int = 0
    revoked_at_ms: int | None = None


class TaskRecord(msgspec.Struct, frozen=True, kw_only=True, tag="task"):
    """A task: an account's configured use of one model version."""

    id: str
    account_id: str
    name: str
    model_id: str
    fill_bindings_via_api: bool = True
    created_at_ms: int = 0
    #: Where its subtasks' final events go when a request names no webhook itself.
    webhook: WebhookTarget | None = None


class WebhookSecretsRecord(msgspec.Struct, frozen=True, kw_only=True, tag="whsec"):
    """An account's webhook signing secrets, newest first (kept in clear: see webhooks)."""

    account_id: str
    secrets: tuple[WebhookSecret, ...] = ()


class DisabledWebhookRecord(msgspec.Struct, frozen=True, kw_only=True, tag="whoff"):
    """A webhook URL that answered 410 Gone: nothing more is delivered to it."""

    account_id: str
    url: str
    at_ms: int = 0
    reason: str = ""


def disabled_webhook_key(account_id: str, url: str) -> str:
    digest = hashlib.sha256(f"{account_id}\n{url}".encode()).hexdigest()[:32]
    return f"whoff:{digest}"


RegistryRecord = (ModelRecord | ApiKeyRecord | TaskRecord | WebhookSecretsRecord
                  | DisabledWebhookRecord)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(RegistryRecord)


def registry_key(record: RegistryRecord) -> str:
    """The registry topic key of ``record``."""
    if isinstance(record, ModelRecord):
        return f"model:{record.id}"
    if isinstance(record, ApiKeyRecord):
        return f"key:{record.key_id}"
    if isinstance(record, WebhookSecretsRecord):
        return f"whsec:{record.account_id}"
    if isinstance(record, DisabledWebhookRecord):
        return disabled_webhook_key(record.account_id, record.url)
    return f"task:{record.id}"


def encode_record(record: RegistryRecord) -> bytes:
    return _encoder.encode(record)


def decode_record(data: bytes) -> RegistryRecord:
    record: RegistryRecord = _decoder.decode(data)
    return record
