"""Notifier settings, read once from ``INFERQ_*`` variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.bus_settings import BusSettings
from schemas.env import SettingError, env_bool, env_float, env_int, env_str

#: The Standard Webhooks retry schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h,
#: 10 h, 10 h (each entry is the wait before that attempt).
STANDARD_SCHEDULE_S = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


def parse_schedule(raw: str) -> tuple[float, ...]:
    try:
        out = tuple(float(x) for x in raw.split(",") if x.strip())
    except ValueError:
        raise SettingError(f"INFERQ_WEBHOOK_SCHEDULE_S={raw!r} is not a list of seconds"
                           ) from None
    if not out or len(out) > 20 or any(x < 0 for x in out):
        raise SettingError("INFERQ_WEBHOOK_SCHEDULE_S needs 1-20 non-negative numbers")
    return out


@dataclass(frozen=True, slots=True)
class NotifierSettings:
    bus: BusSettings = field(default_factory=BusSettings)
    #: ``INFERQ_NOTIFIER_HOST`` / ``INFERQ_NOTIFIER_PORT``: health, metrics, streams.
    http_host: str = "127.0.0.1"
    http_port: int = 8002
    #: ``INFERQ_NOTIFIER_GROUP``: consumer group delivering webhooks (default: prefix +
    #: ``notifier``); every notifier replica joins it.
    group_id: str = ""
    #: ``INFERQ_ALLOW_PRIVATE_URLS``: let webhooks target loopback/private hosts (tests).
    allow_private_urls: bool = False
    #: ``INFERQ_WEBHOOK_SCHEDULE_S``: wait before each attempt, comma-separated seconds.
    webhook_schedule_s: tuple[float, ...] = STANDARD_SCHEDULE_S
    #: ``INFERQ_WEBHOOK_JITTER``: each wait is stretched by up to this fraction at random.
    webhook_jitter: float = 0.2
    #: ``INFERQ_WEBHOOK_MAX_WAIT_S``: cap on any one wait, a ``Retry-After`` included.
    webhook_max_wait_s: float = 36000.0
    #: ``INFERQ_WEBHOOK_TIMEOUT_S``: one attempt's whole time (connect, send, answer).
    webhook_timeout_s: float = 15.0
    #: ``INFERQ_WEBHOOK_MAX_IN_FLIGHT``: deliveries held at once; intake pauses beyond.
    webhook_max_in_flight: int = 1000
    #: ``INFERQ_NOTIFIER_BOOK``: subtasks whose lifecycle is kept for streams (the
    #: oldest first seen are forgotten first); also the subtasks whose webhook attempts
    #: are listed.
    book_capacity: int = 100_000
    #: ``INFERQ_NOTIFIER_BOOK_BYTES``: bytes of stream events the book keeps (each
    #: subtask's events' data, outputs included, and its metadata, plus 1.75 KiB);
    #: the oldest subtasks are forgotten past it, never the newest. With large tensors
    #: this, not the count, bounds memory: a 1 MiB float32 output is several MiB of JSON.
    book_bytes: int = 256 * 1024 * 1024
    #: ``INFERQ_SSE_PING_S``: seconds between comment pings on an idle stream.
    sse_ping_s: float = 15.0
    #: ``INFERQ_SSE_UNKNOWN_WAIT_S``: how long a stream waits for a subtask not seen yet
    #: (just submitted) before answering 404.
    sse_unknown_wait_s: float = 5.0
    #: ``INFERQ_SSE_MAX_STREAMS``: open streams at once; beyond, 503.
    sse_max_streams: int = 10_000

    @property
    def results_group(self) -> str:
        return self.group_id or f"{self.bus.topic_prefix}notifier"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotifierSettings:
        env = os.environ if env is None else env
        raw_schedule = env.get("INFERQ_WEBHOOK_SCHEDULE_S", "").strip()
        return cls(
            bus=BusSettings.from_env(env),
            http_host=env_str(env, "INFERQ_NOTIFIER_HOST", "127.0.0.1"),
            http_port=env_int(env, "INFERQ_NOTIFIER_PORT", 8002),
            group_id=env_str(env, "INFERQ_NOTIFIER_GROUP", ""),
            allow_private_urls=env_bool(env, "INFERQ_ALLOW_PRIVATE_URLS", False),
            webhook_schedule_s=parse_schedule(raw_schedule) if raw_schedule
            else STANDARD_SCHEDULE_S,
            webhook_jitter=env_float(env, "INFERQ_WEBHOOK_JITTER", 0.2),
            webhook_max_wait_s=env_float(env, "INFERQ_WEBHOOK_MAX_WAIT_S", 36000.0),
            webhook_timeout_s=env_float(env, "INFERQ_WEBHOOK_TIMEOUT_S", 15.0, minimum=0.1),
            webhook_max_in_flight=env_int(env, "INFERQ_WEBHOOK_MAX_IN_FLIGHT", 1000, minimum=1),
            book_capacity=env_int(env, "INFERQ_NOTIFIER_BOOK", 100_000, minimum=1),
            book_bytes=env_int(env, "INFERQ_NOTIFIER_BOOK_BYTES", 256 * 1024 * 1024,
                               minimum=1024 * 1024),
            sse_ping_s=env_float(env, "INFERQ_SSE_PING_S", 15.0, minimum=0.1),
            sse_unknown_wait_s=env_float(env, "INFERQ_SSE_UNKNOWN_WAIT_S", 5.0),
            sse_max_streams=env_int(env, "INFERQ_SSE_MAX_STREAMS", 10_000, minimum=1),
        )
