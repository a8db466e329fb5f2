"""A model repository in the Triton layout, registered when ingest starts.

``<repo>/<model>/<version>/model.onnx``: version directories are integers, as Triton
has them; anything else in the tree is ignored. Each file is copied into the model store
and registered (a file whose content changed replaces its record: the repository is the
source of truth for its models). Each model also gets one submit-API task, owned by the
repository account and pointing at its newest version; its id is derived from the
model's name, so every start and every ingest replica writes the same task.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from pathlib import Path

import msgspec

from bus.registry_view import RegistryView
from ingest.errors import BadRequest
from ingest.model_store import ModelStore
from schemas.env import SettingError
from schemas.registry import ModelRecord, TaskRecord, newest_versions

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_TASK_NAMESPACE = uuid.UUID("6f1c3f0e-4e0b-4d0a-9a53-2f1b7c0d9e11")


def repository_task_id(model_name: str) -> str:
    return str(uuid.uuid5(_TASK_NAMESPACE, model_name))


def scan(root: Path) -> list[tuple[str, str, Path]]:
    """``(model, version, path)`` of every model file in the repository."""
    if not root.is_dir():
        raise SettingError(f"INFERQ_MODEL_REPOSITORY={str(root)!r} is not a directory")
    found: list[tuple[str, str, Path]] = []
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if not _NAME_RE.match(model_dir.name):
            log.warning("model repository: skipping %s (not a usable model name)", model_dir)
            continue
        versions = [v for v in model_dir.iterdir()
                    if v.is_dir() and v.name.isdigit() and (v / "model.onnx").is_file()]
        if not versions:
            log.warning("model repository: %s has no <version>/model.onnx", model_dir)
        for v in sorted(versions, key=lambda p: int(p.name)):
            found.append((model_dir.name, str(int(v.name)), v / "model.onnx"))
    return found


def _store(store: ModelStore, name: str, version: str, path: Path) -> ModelRecord:
    return store.save(name, version, path.read_bytes())


async def register_repository(
    registry: RegistryView, store: ModelStore, root: Path, account: str
) -> list[ModelRecord]:
    """Register every model version in ``root`` and each model's task; returns the models."""
    registered: list[ModelRecord] = []
    for name, version, path in await asyncio.to_thread(scan, root):
        try:
            record = await asyncio.to_thread(_store, store, name, version, path)
        except (BadRequest, OSError) as exc:
            # One broken file must not keep the other models (and ingest) down.
            log.error("model repository: %s not registered: %s", path, exc)
            continue
        existing = registry.models.get(record.id)
        if existing is not None and existing.sha256 == record.sha256:
            record = existing
        else:
            if existing is not None:
                log.warning("model repository: %s changed; replacing %s", path, record.id)
                # Batching set through the admin API outlives a new file.
                record = msgspec.structs.replace(
                    record, max_batch_size=existing.max_batch_size,
                    max_queue_delay_ms=existing.max_queue_delay_ms)
            await registry.put(record)
        registered.append(record)
    newest = newest_versions(registered)
    for name, model in newest.items():
        task_id = repository_task_id(name)
        task = TaskRecord(id=task_id, account_id=account, name=name, model_id=model.id,
                          created_at_ms=int(time.time() * 1000))
        existing_task = registry.tasks.get(task_id)
        if existing_task is not None:
            task = msgspec.structs.replace(  # as is its task's batching
                task, max_batch_size=existing_task.max_batch_size,
                max_queue_delay_ms=existing_task.max_queue_delay_ms)
            if msgspec.structs.replace(existing_task, created_at_ms=task.created_at_ms) == task:
                continue
        await registry.put(task)
    log.info("model repository registered", extra={"models": len(newest),
                                                   "versions": len(registered)})
    return registered
