"""The registry view: keys, models and tasks, rebuilt by replaying the registry topic.

Every service that needs the registry (ingest for auth and tasks, the notifier for
auth, runners for models) keeps one of these.

Writes go to the topic, never straight into the view; a writer then waits until its
own tail has applied the record, so a client that created a task can use it at once,
and every replica converges on the same state.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec

from bus.base import Bus, BusError, Record
from bus.follower import Follower
from schemas.keys import key_id_of, matches
from schemas.registry import (
    ApiKeyRecord,
    DisabledWebhookRecord,
    ModelRecord,
    RegistryRecord,
    TaskRecord,
    WebhookSecretsRecord,
    decode_record,
    encode_record,
    registry_key,
)

log = logging.getLogger(__name__)

_VERIFIED_KEYS = 1024


class RegistryView:
    def __init__(self, bus: Bus, topic: str, *, background: bool = True) -> None:
        """``background``: follow with the longer fetch wait (``Bus.tail``); a view whose
        readers act on records another process wrote a moment ago wants it off."""
        self._bus = bus
        self._topic = topic
        self.keys: dict[str, ApiKeyRecord] = {}
        self.models: dict[str, ModelRecord] = {}
        self.tasks: dict[str, TaskRecord] = {}
        #: Webhook signing secrets by account id.
        self.webhook_secrets: dict[str, WebhookSecretsRecord] = {}
        #: Webhook URLs disabled by a 410, by their registry key.
        self.disabled_webhooks: dict[str, DisabledWebhookRecord] = {}
        self._follower = Follower(bus, [topic], self._apply_record, name="registry",
                                  background=background)
        self._applied: dict[str, asyncio.Event] = {}
        #: Keys whose hash matched, by key: saves a SHA-256 per request (bounded).
        self._verified: dict[str, ApiKeyRecord] = {}

    async def start(self) -> None:
        """Replay the registry; returns once the view holds everything written before."""
        await self._follower.start()
        await asyncio.wait_for(self._follower.caught_up.wait(), 60)

    async def stop(self) -> None:
        await self._follower.stop()

    @property
    def ready(self) -> bool:
        return self._follower.caught_up.is_set()

    def _apply_record(self, rec: Record) -> None:
        self._apply((rec.key or b"").decode(), rec.value)

    def _apply(self, key: str, value: bytes | None) -> None:
        kind, _, ident = key.partition(":")
        if value is None:
            if kind == "key":
                self.keys.pop(ident, None)
            elif kind == "model":
                self.models.pop(ident, None)
            elif kind == "task":
                self.tasks.pop(ident, None)
            elif kind == "whsec":
                self.webhook_secrets.pop(ident, None)
            elif kind == "whoff":
                self.disabled_webhooks.pop(key, None)
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
            elif isinstance(record, WebhookSecretsRecord):
                self.webhook_secrets[record.account_id] = record
            elif isinstance(record, DisabledWebhookRecord):
                self.disabled_webhooks[key] = record
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
            raise BusError(f"registry write {key} was not seen back within 30 s") from None

    # reads -----------------------------------------------------------------------------
    async def account_for_soon(self, key: str | None, wait_s: float = 1.0) -> str | None:
        """``account_for``, but a well-formed key this view has not seen yet gets up to
        ``wait_s`` for its record to arrive: a key created through another process (or
        another view in this one) a moment ago is usable at once. Unknown key ids only;
        a wrong secret or a revoked key is answered without waiting."""
        account = self.account_for(key)
        key_id = key_id_of(key) if key else None
        deadline = time.monotonic() + wait_s
        while account is None and key_id and key_id not in self.keys:
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.02)
            account = self.account_for(key)
        return account

    def account_for(self, key: str | None) -> str | None:
        """The account of a valid, unrevoked key, else None (compared in constant time)."""
        if not key:
            return None
        record = self._verified.get(key)
        # A cached match holds only while the view still has that very record: a
        # revocation, rotation or deletion replaces or drops it, and the key is checked
        # afresh (so revoking takes effect at once).
        if record is None or self.keys.get(record.key_id) is not record:
            key_id = key_id_of(key)
            record = self.keys.get(key_id) if key_id else None
            if record is None or not matches(key, record.key_hash):
                self._verified.pop(key, None)
                return None
            if len(self._verified) >= _VERIFIED_KEYS:
                self._verified.clear()
            self._verified[key] = record
        if record.revoked_at_ms is not None and record.revoked_at_ms <= time.time() * 1000:
            return None
        return record.account_id
