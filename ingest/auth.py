"""Authentication and ownership checks over the registry view, as HTTP errors."""

from __future__ import annotations

from bus.registry_view import RegistryView
from ingest.errors import NotFound, Unauthorized
from schemas.keys import key_id_of, matches
from schemas.registry import ModelRecord, TaskRecord


def authenticate(registry: RegistryView, key: str | None) -> str:
    """The account id of a valid, unrevoked key; else Unauthorized."""
    if not key:
        raise Unauthorized("missing API key: send it in the X-Api-Key header")
    account = registry.account_for(key)
    if account is None:
        record = registry.keys.get(key_id_of(key) or "")
        if record is not None and record.revoked_at_ms is not None and matches(
            key, record.key_hash
        ):
            raise Unauthorized("this API key has been revoked")
        raise Unauthorized("invalid API key")
    return account


def task_for(registry: RegistryView, task_id: str, account_id: str) -> TaskRecord:
    task = registry.tasks.get(task_id)
    # Another account's task is answered exactly like a missing one.
    if task is None or task.account_id != account_id:
        raise NotFound(f"task {task_id} not found")
    return task


def model_for(registry: RegistryView, model_id: str) -> ModelRecord:
    model = registry.models.get(model_id)
    if model is None:
        raise NotFound(f"model {model_id} not found")
    return model
