"""The registry view: keys, models and tasks, rebuilt by replaying the registry topic.

Writes go to the topic, never straight into the view; a writer then waits until its
own tail has applied the record, so a client that created a task can use it at once,
and every replica converges on the same state.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec

from bus.base import Bus, Tail
from ingest.errors import NotFound, Unauthorized, Unavailable
from ingest.keys import key_id_of, matches
from schemas.registry import (
    ApiKeyRecord,
    ModelRecord,
    RegistryRecord,
    TaskRecord,
    decode_record,
    encode_record,
    registry_key,
)

log = logging.getLogger(__name__)


class RegistryView:
    def __init__(self, bus: Bus, topic: str) -> None:
        self._bus = bus
        self._topic = topic
        self.keys: dict[str, ApiKeyRecord] = {}
        self.models: dict[str, ModelRecord] = {}
        self.tasks: dict[str, TaskRecord] = {}
        self._tail: Tail | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._applied: dict[str, asyncio.Event] = {}

    async def start(self) -> None:
        self._tail = self._bus.tail([self._topic], from_beginning=True)
        await self._tail.start()
        self._task = asyncio.create_task(self._run(), name="registry-tail")
        await asyncio.wait_for(self._ready.wait(), 60)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._tail is not None:
            await self._tail.stop()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def _run(self) -> None:
        assert self._tail is not None
        while True:
            if self._tail.caught_up():
                self._ready.set()
            for rec in await self._tail.fetch(1000, 0.5):
                key = (rec.key or b"").decode()
                self._apply(key, rec.value)

    def _apply(self, key: str, value: bytes | None) -> None:
        kind, _, ident = key.partition(":")
        if value is None:
            {"key": self.keys, "model": self.models, "task": self.tasks}.get(kind, {}).pop(
                ident, None
            )
        else:
            try:
                record = decode_record(value)
            except msgspec.DecodeError as exc:
                log.error("skipping undecodable registry record %s: %s", key, exc)
                return
            if isinstance(record, ApiKeyRecord):
                self.keys[record.key_id] = record
            elif isinstance(record, ModelRecord):
                self.models[record.id] = record
            else:
                self.tasks[record.id] = record
        event = self._applied.pop(key, None)
        if event is not None:
            event.set()

    async def put(self, record: RegistryRecord) -> None:
        await self._write(registry_key(record), encode_record(record))

    async def delete(self, key: str) -> None:
        await self._write(key, None)

    async def _write(self, key: str, value: bytes | None) -> None:
        event = self._applied.setdefault(key, asyncio.Event())
        await self._bus.publish(self._topic, key.encode(), value)
        try:
            await asyncio.wait_for(event.wait(), 30)
        except TimeoutError:
            raise Unavailable(f"registry write {key} was not seen back within 30 s") from None

    # reads -----------------------------------------------------------------------------
    def authenticate(self, key: str | None) -> str:
        """The account id of a valid, unrevoked key; else Unauthorized."""
        if not key:
            raise Unauthorized("missing API key: send it in the X-Api-Key header")
        key_id = key_id_of(key)
        record = self.keys.get(key_id) if key_id else None
        if record is None or not matches(key, record.key_hash):
            raise Unauthorized("invalid API key")
        if record.revoked_at_ms is not None and record.revoked_at_ms <= time.time() * 1000:
            raise Unauthorized("this API key has been revoked")
        return record.account_id

    def task_for(self, task_id: str, account_id: str) -> TaskRecord:
        task = self.tasks.get(task_id)
        # Another account's task is answered exactly like a missing one.
        if task is None or task.account_id != account_id:
            raise NotFound(f"task {task_id} not found")
        return task

    def model(self, model_id: str) -> ModelRecord:
        model = self.models.get(model_id)
        if model is None:
            raise NotFound(f"model {model_id} not found")
        return model
