"""Rate limits per API key and class of call, as token buckets shared by every replica.

How N ingest replicas keep one limit: **the budget is partitioned by the live replica
count.** Each replica beats on a small compacted topic (``<prefix>ingest-replicas``,
key = replica id) every ``beat_s`` and tombstones on stop; every replica tails it and
counts the replicas heard from in the last three beats (itself included) as N. A key's
bucket for a class holds ``limit`` tokens refilled at ``limit / period``; each replica
holds 1/N of it (capacity ``limit/N``, refill ``limit/(N·period)``) and admits only
whole tokens, so while membership is steady the replicas together never admit more
than one bucket would: at most ``limit + limit·T/period`` calls in any T seconds.

Transitions: a replica that starts (or restarts) begins with a full share before the
others have heard it: until they do (one beat plus bus latency), at most one extra
share, ``limit/N``, passes. When N grows a replica scales its tokens down at once;
when N shrinks it keeps its tokens and only refills faster, so no extra burst appears.
The cost of partitioning: a client whose calls all land on one replica gets ``1/N``
of its limit (a load balancer spreading calls evenly gives it all of it).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import msgspec

from bus.base import Bus, BusError, Tail
from bus.topics import TopicSpec
from schemas.env import SettingError

log = logging.getLogger(__name__)

CLASSES = ("run", "get", "upload")
DEFAULT_LIMITS = "run=100/60,get=1000/60,upload=50/60"
#: Buckets remembered at most; the least recently used are dropped (they refill anyway).
MAX_BUCKETS = 100_000
MISSED_BEATS = 3


@dataclass(frozen=True, slots=True)
class Limit:
    count: int
    period_s: float


def parse_limits(spec: str) -> dict[str, Limit]:
    """``run=100/60,get=1000/60,upload=50/60``: calls per seconds, per class; a class
    left out keeps its default."""
    limits: dict[str, Limit] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        name, _, value = part.strip().partition("=")
        count, _, period = value.partition("/")
        try:
            limit = Limit(int(count), float(period or "60"))
        except ValueError:
            raise SettingError(f"INFERQ_RATE_LIMITS: {part!r} is not <class>=<count>/<seconds>"
                               ) from None
        if name not in CLASSES or limit.count < 1 or limit.period_s <= 0:
            raise SettingError(f"INFERQ_RATE_LIMITS: {part!r}: class must be one of {CLASSES}, "
                               "count >= 1 and seconds > 0")
        limits[name] = limit
    return {**_DEFAULTS, **limits}


_DEFAULTS = {"run": Limit(100, 60), "get": Limit(1000, 60), "upload": Limit(50, 60)}


class ReplicaBeat(msgspec.Struct, frozen=True, kw_only=True):
    replica_id: str
    at_ms: int


_beat_decoder = msgspec.msgpack.Decoder(ReplicaBeat)
_beat_encoder = msgspec.msgpack.Encoder()


class Replicas:
    """How many ingest replicas are alive, from their beats."""

    def __init__(self, bus: Bus, topic: str, *, beat_s: float) -> None:
        self._bus = bus
        self.topic = topic
        self._beat_s = beat_s
        self.replica_id = uuid.uuid4().hex
        self._seen: dict[str, int] = {}
        self._tail: Tail | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def count(self) -> int:
        horizon = int(time.time() * 1000) - int(MISSED_BEATS * self._beat_s * 1000)
        others = sum(1 for rid, at in self._seen.items()
                     if rid != self.replica_id and at >= horizon)
        return 1 + others

    async def start(self) -> None:
        await self._bus.ensure_topics([TopicSpec(self.topic, 1, compact=True)])
        await self._beat()
        self._tail = self._bus.tail([self.topic], from_beginning=True, background=True)
        await self._tail.start()
        self._tasks = [asyncio.create_task(self._follow(), name="replicas-tail"),
                       asyncio.create_task(self._beat_loop(), name="replicas-beat")]

    async def stop(self) -> None:
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self._bus.publish(self.topic, self.replica_id.encode(), None)
        except BusError:
            pass
        if self._tail is not None:
            await self._tail.stop()

    async def _beat(self) -> None:
        beat = ReplicaBeat(replica_id=self.replica_id, at_ms=int(time.time() * 1000))
        try:
            await self._bus.publish(self.topic, self.replica_id.encode(),
                                    _beat_encoder.encode(beat))
        except BusError as exc:
            log.warning("replica beat failed: %s", exc)

    async def _beat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._beat_s)
            await self._beat()

    async def _follow(self) -> None:
        assert self._tail is not None
        while not self._stopping:
            for rec in await self._tail.fetch(1000, 0.5):
                rid = (rec.key or b"").decode(errors="replace")
                if rec.value is None:
                    self._seen.pop(rid, None)
                    continue
                try:
                    self._seen[rid] = _beat_decoder.decode(rec.value).at_ms
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue
            if len(self._seen) > MAX_BUCKETS:
                self._seen.clear()  # a flood of ids is noise; live replicas beat again soon


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    share: int


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    #: Unix time (s) at which this replica's share of the bucket is full again.
    reset_epoch: int
    #: Seconds until a token is available (0 when allowed).
    retry_after_s: int


class RateLimiter:
    def __init__(self, limits: dict[str, Limit], replicas: Replicas | None) -> None:
        self.limits = limits
        self._replicas = replicas
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()

    def take(self, who: str, cls: str) -> Decision:
        limit = self.limits[cls]
        n = self._replicas.count if self._replicas is not None else 1
        cap = limit.count / n
        rate = limit.count / limit.period_s / n
        now = time.monotonic()
        key = (who, cls)
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(cap, now, n)
            if len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            if n > b.share:  # more replicas: give up the part of the share now theirs
                b.tokens = b.tokens * b.share / n
            b.share = n
            b.tokens = min(cap, b.tokens + (now - b.at) * rate)
            b.at = now
        allowed = b.tokens >= 1.0
        if allowed:
            b.tokens -= 1.0
        wall = time.time()
        reset = math.ceil(wall + (cap - b.tokens) / rate)
        retry = 0 if allowed else max(1, math.ceil((1.0 - b.tokens) / rate))
        return Decision(allowed, limit.count, int(b.tokens), reset, retry)


def caller_id(key: str | None, client_host: str) -> str:
    """Buckets are per key (by hash: the key itself is never kept), else per address."""
    if key:
        return "k:" + hashlib.sha256(key.encode()).hexdigest()[:32]
    return "ip:" + client_host


_EXEMPT_PREFIXES = ("/admin/", "/v2/health/", "/docs")
_EXEMPT = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/v2", "/docs"})


def classify(method: str, path: str) -> str | None:
    """The rate class of a call, or None for probes, metrics, docs and admin."""
    if path in _EXEMPT or path.startswith(_EXEMPT_PREFIXES):
        return None
    if method == "POST":
        if path in ("/run", "/apps/run") or path.startswith("/api/inference/tasks/"):
            return "run"
        if path.startswith("/v2/models/") and path.endswith("/infer"):
            return "run"
        if path == "/files":
            return "upload"
    return "get"
