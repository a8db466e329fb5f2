"""Webhook delivery: one consumer-group loop over ``results``, commits after delivery.

Each result that names a webhook wanting its final state becomes one delivery: a
signed POST (see ``sender``), retried on the configured schedule (Standard Webhooks by
default) with jitter and the receiver's ``Retry-After``, each wait capped. A delivery
is *finished* when it was delivered, failed for good (other 4xx, 410 also disabling the
URL, refused by the URL guard) or was dead-lettered after the last attempt. Only the
contiguous prefix of finished deliveries is committed per partition (``bus.offsets.Committer``),
so a notifier killed mid-retry redelivers the unfinished ones after it restarts, with
the same ``webhook-id`` (``msg_<subtask id>``): receivers deduplicate on it. The cost:
a result retried for hours holds back its partition's commit, so a restart may also
resend later results that were delivered already, again with their stable ids.

Attempt numbers restart with the process; the schedule starts over after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import UTC, datetime

import msgspec
from prometheus_client import CollectorRegistry
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from bus.base import Bus, BusError, GroupConsumer, Record
from bus.offsets import Committer
from bus.registry_view import RegistryView
from bus.topics import TopicNames
from notifier.deliveries import Attempt, DeliveryLog
from notifier.errors import DeliveryFailed, DeliveryRetry
from notifier.sender import WebhookSender
from notifier.settings import NotifierSettings
from obs.metrics import WebhookMetrics
from schemas.messages import SubtaskResult, result_decoder
from schemas.registry import DisabledWebhookRecord, disabled_webhook_key
from schemas.state import final_state
from schemas.submit_api import submit_response
from schemas.webhooks import WebhookTarget

log = logging.getLogger(__name__)
_json = msgspec.json.Encoder()


def webhook_body(result: SubtaskResult) -> bytes:
    """The payload, identical on every attempt: type, timestamp and the GET body."""
    finished = datetime.fromtimestamp(result.finished_at_ms / 1000, UTC)
    return _json.encode({
        "type": f"subtask.{final_state(result)}",
        "timestamp": finished.isoformat().replace("+00:00", "Z"),
        "taskId": result.task_id,
        "data": submit_response(result.subtask_id, result),
    })


class ScheduleWait:
    """Tenacity wait: the schedule's next step, stretched by jitter, ``Retry-After``
    honoured, never beyond ``cap``."""

    def __init__(self, schedule: tuple[float, ...], jitter: float, cap: float) -> None:
        self._schedule = schedule
        self._jitter = jitter
        self._cap = cap

    def __call__(self, state: RetryCallState) -> float:
        n = state.attempt_number  # attempts made so far: the next one's index
        base = self._schedule[min(n, len(self._schedule) - 1)]
        wait = base * (1 + random.uniform(0, self._jitter))
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, DeliveryRetry) and exc.retry_after_s is not None:
            wait = max(wait, exc.retry_after_s)
        return min(wait, self._cap)


class _WebhookOnly(msgspec.Struct, frozen=True):
    """A result's webhook and nothing else: decoding skips the rest (outputs included)."""

    webhook: WebhookTarget | None = None


_webhook_only = msgspec.msgpack.Decoder(_WebhookOnly)


def _may_have_webhook(rec: Record) -> bool:
    """False only for a result that surely has no webhook (undecodable ones go on to
    ``_handle``, which owns what to do with them)."""
    if rec.value is None:
        return False
    try:
        return _webhook_only.decode(rec.value).webhook is not None
    except (msgspec.DecodeError, msgspec.ValidationError):
        return True


class Deliverer:
    def __init__(self, settings: NotifierSettings, bus: Bus, registry: RegistryView,
                 attempts: DeliveryLog, metrics: CollectorRegistry) -> None:
        self._settings = settings
        self._bus = bus
        self._topics = TopicNames(settings.bus.topic_prefix)
        self._registry = registry
        self._attempts = attempts
        self._sender = WebhookSender(allow_private=settings.allow_private_urls,
                                     timeout_s=settings.webhook_timeout_s)
        self._commits = Committer()
        self._consumer: GroupConsumer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._background: list[asyncio.Task[None]] = []
        self._metrics = WebhookMetrics(metrics)

    async def start(self) -> None:
        await self._sender.start()
        # Deferred on the embedded bus: deliveries run after the request path, batched.
        self._consumer = self._bus.group_consumer([self._topics.results],
                                                  self._settings.results_group,
                                                  deferred=[self._topics.results])
        self._commits.attach(self._consumer)
        await self._consumer.start()
        self._background = [asyncio.create_task(self._consume(), name="webhooks-consume"),
                            asyncio.create_task(self._commits.run(), name="webhooks-commit")]

    async def stop(self) -> None:
        """Stop intake; unfinished deliveries are abandoned uncommitted (a restart redoes
        them); commit the finished prefix; leave the group."""
        for task in [*self._background[:1], *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._background[:1], *self._tasks, return_exceptions=True)
        await self._commits.commit_now()
        for task in self._background[1:]:
            task.cancel()
        await asyncio.gather(*self._background[1:], return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()
        await self._sender.stop()

    async def _consume(self) -> None:
        assert self._consumer is not None
        consumer, paused = self._consumer, False
        while True:
            free = self._settings.webhook_max_in_flight - len(self._tasks)
            if free <= 0:
                if not paused:
                    consumer.pause()
                    paused = True
                records = await consumer.fetch(1, 0.2)  # keeps the membership alive
            else:
                if paused:
                    consumer.resume()
                    paused = False
                records = await consumer.fetch(min(free, 500), 0.5)
            for rec in records:
                tp = (rec.topic, rec.partition)
                self._commits.started(tp, rec.offset)
                if not _may_have_webhook(rec):
                    # Most results have no webhook: passed over here, with no task and
                    # no decode of their outputs.
                    self._commits.finished(tp, rec.offset)
                    continue
                task = asyncio.create_task(self._handle(rec))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _handle(self, rec: Record) -> None:
        try:
            result = result_decoder.decode(rec.value) if rec.value is not None else None
        except msgspec.DecodeError:
            result = None  # ingest and the dead-letter path own undecodable results
        target = result.webhook if result is not None else None
        if result is not None and target is not None and target.wants(final_state(result)):
            await self._deliver(result, target)
        self._commits.finished((rec.topic, rec.partition), rec.offset)

    def _note(self, result: SubtaskResult, target: WebhookTarget, n: int, outcome: str,
              status: int | None = None, error: str | None = None) -> None:
        self._metrics.attempts.labels(outcome).inc()
        self._attempts.record(result.subtask_id, result.account_id, Attempt(
            at_ms=int(time.time() * 1000), attempt=n, url=target.url,
            webhook_id=f"msg_{result.subtask_id}", status=status, error=error,
            outcome=outcome))

    def _secrets(self, account_id: str) -> list[str]:
        record = self._registry.webhook_secrets.get(account_id)
        now = int(time.time() * 1000)
        return [s.secret for s in (record.secrets if record else ()) if s.valid_at(now)]

    async def _deliver(self, result: SubtaskResult, target: WebhookTarget) -> None:
        extra = {"subtask_id": result.subtask_id, "task_id": result.task_id}
        if disabled_webhook_key(result.account_id, target.url) in self._registry.disabled_webhooks:
            self._note(result, target, 0, "skipped", error="URL disabled after HTTP 410")
            return
        webhook_id = f"msg_{result.subtask_id}"
        body = webhook_body(result)
        schedule = self._settings.webhook_schedule_s
        if schedule[0] > 0:
            await asyncio.sleep(schedule[0])
        n = 0
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(len(schedule)),
                wait=ScheduleWait(schedule, self._settings.webhook_jitter,
                                  self._settings.webhook_max_wait_s),
                retry=retry_if_exception_type(DeliveryRetry), reraise=True,
            ):
                with attempt:
                    n += 1
                    secrets = self._secrets(result.account_id)
                    if not secrets:
                        raise DeliveryRetry("the account has no webhook signing secret")
                    try:
                        with self._metrics.duration.time():
                            status = await self._sender.send(target.url, webhook_id, body,
                                                             secrets)
                    except DeliveryRetry as exc:
                        self._note(result, target, n, "retry", exc.status, str(exc))
                        raise
                    self._note(result, target, n, "delivered", status)
                    log.info("webhook delivered", extra=extra | {"attempt": n})
        except DeliveryFailed as exc:
            outcome = "gone" if exc.gone else "refused" if exc.refused else "failed"
            if exc.gone:
                # Disabled (and seen back by this view) before the attempt is listed: a
                # caller who reads `gone` and submits again must find the URL skipped.
                await self._disable(result.account_id, target.url)
            self._note(result, target, n, outcome, exc.status, str(exc))
            log.warning("webhook failed for good: %s", exc, extra=extra)
        except DeliveryRetry as exc:
            await self._dead_letter(result, target, body, n, str(exc))

    async def _disable(self, account_id: str, url: str) -> None:
        try:
            await self._registry.put(DisabledWebhookRecord(
                account_id=account_id, url=url, at_ms=int(time.time() * 1000),
                reason="HTTP 410 Gone"))
        except BusError as exc:
            log.error("could not record a disabled webhook URL: %s", exc)

    async def _dead_letter(self, result: SubtaskResult, target: WebhookTarget, body: bytes,
                           n: int, error: str) -> None:
        headers = (("error", f"webhook not delivered after {n} attempts: {error}".encode()[:1000]),
                   ("source-topic", self._topics.results.encode()),
                   ("webhook-id", f"msg_{result.subtask_id}".encode()),
                   ("webhook-url", target.url.encode()[:2048]))
        while True:
            try:
                await self._bus.publish(self._topics.deadletter, result.subtask_id.encode(),
                                        body, headers)
                break
            except BusError as exc:  # keep it uncommitted-in-effect until the bus is back
                log.error("dead-letter publish failed, retrying: %s", exc)
                await asyncio.sleep(1)
        self._note(result, target, n, "deadlettered", error=error)

