"""Registry records: API keys, models and tasks, as kept on the compacted registry topic.

The topic key says what a record is (``key:<id>``, ``model:<id>``, ``task:<id>``); a
null value is a tombstone. Values are a tagged union so one decoder reads them all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import msgspec

from schemas.webhooks import WebhookSecret, WebhookTarget

#: The largest ``max_batch_size`` a model or task may set.
MAX_BATCH_SIZE = 1024
#: The longest ``max_queue_delay_ms`` a model or task may set (the runner's batcher caps
#: its window at 10 s).
MAX_QUEUE_DELAY_MS = 10_000.0


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
    #: Dynamic batching limits of every request on this model unless its task sets its
    #: own; None: the runner's default (``INFERQ_MAX_BATCH_SIZE``, ``…_QUEUE_DELAY_MS``).
    max_batch_size: int | None = None
    max_queue_delay_ms: float | None = None

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"


def version_key(model: ModelRecord) -> tuple[int, int]:
    """Orders a model's versions: numbered ones by number, after the others; then by age."""
    return (int(model.version) if model.version.isdigit() else -1, model.created_at_ms)


def newest_versions(models: Iterable[ModelRecord]) -> dict[str, ModelRecord]:
    """Each model name's newest version (``version_key``)."""
    newest: dict[str, ModelRecord] = {}
    for m in models:
        if m.name not in newest or version_key(m) > version_key(newest[m.name]):
            newest[m.name] = m
    return newest


def model_uri(model: ModelRecord, base_url: str = "") -> str:
    """Where runners find ``model``'s file: the store's own URI, or the same file under
    ``INFERQ_MODEL_BASE_URL`` (the store served over http(s) to runners on other
    hosts), named by sha256 as the store names it."""
    if not base_url:
        return model.uri
    return f"{base_url.rstrip('/')}/{model.sha256}.onnx"


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
    #: Dynamic batching limits of its requests, each overriding its model's; None: the
    #: model's, else the runner's default.
    max_batch_size: int | None = None
    max_queue_delay_ms: float | None = None


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


def batching_limits(task: TaskRecord, model: ModelRecord) -> tuple[int, float]:
    """A request's ``(max_batch_size, max_queue_delay_ms)``: per field the task's, else the
    model's, else ``0`` / ``-1.0`` (which ``InferenceRequest`` reads as the runner's own)."""
    size = task.max_batch_size if task.max_batch_size is not None else model.max_batch_size
    delay = (task.max_queue_delay_ms if task.max_queue_delay_ms is not None
             else model.max_queue_delay_ms)
    return (0 if size is None else size), (-1.0 if delay is None else delay)


def batch_size_problem(field: str, value: int | None) -> str | None:
    """Why ``value`` is no valid ``max_batch_size`` (None: valid, or unset), naming
    ``field`` (the caller's name for it) and the allowed range."""
    if value is None or 1 <= value <= MAX_BATCH_SIZE:
        return None
    return (f"{field} must be an integer from 1 to {MAX_BATCH_SIZE} (or null for the "
            f"default), got {value!r}")


def queue_delay_problem(field: str, value: float | None) -> str | None:
    """Why ``value`` is no valid ``max_queue_delay_ms`` (None: valid, or unset)."""
    if value is None or 0 <= value <= MAX_QUEUE_DELAY_MS:  # NaN fails the range
        return None
    return (f"{field} must be from 0 to {MAX_QUEUE_DELAY_MS:.0f} milliseconds (or null for "
            f"the default), got {value!r}")


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
