"""Operator views of a Kafka deployment: topics as provisioned, runners, group lag.

Used by ``inferq topics describe`` and ``inferq status``. Everything here talks to the
broker directly (admin client and a group-less consumer) and never joins a group, so it
is safe to run against a live system. An unreachable broker is a ``BusError`` with the
address in its message.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from bus.base import BusError
from bus.topics import TopicNames
from schemas.messages import heartbeat_decoder

_TIMEOUT_MS = 5_000


async def _admin(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="inferq-ops",
                                request_timeout_ms=_TIMEOUT_MS)
    try:
        await admin.start()
    except KafkaError as exc:
        await admin.close()
        raise BusError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    return admin


async def _consumer(bootstrap: str, group: str | None = None) -> AIOKafkaConsumer:
    """A started consumer that never subscribes (with ``group``: reads that group's
    committed offsets without joining it)."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id="inferq-ops", group_id=group,
                         enable_auto_commit=False, request_timeout_ms=_TIMEOUT_MS)
    try:
        await c.start()
    except KafkaError as exc:
        await c.stop()
        raise BusError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    return c


async def describe_topics(bootstrap: str, prefix: str) -> list[dict[str, Any]]:
    """Every inferq topic: whether it exists, its partitions and cleanup configs."""
    names = [s.name for s in TopicNames(prefix).specs()]
    admin = await _admin(bootstrap)
    try:
        existing = set(await admin.list_topics())
        present = [n for n in names if n in existing]
        partitions: dict[str, int] = {}
        for meta in await admin.describe_topics(present) if present else []:
            partitions[meta["topic"]] = len(meta["partitions"])
        configs: dict[str, dict[str, str]] = {n: {} for n in present}
        try:
            responses = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, n) for n in present])
            for resp in responses:
                for resource in resp.to_object()["resources"]:
                    configs[resource["resource_name"]] = {
                        e["config_names"]: e["config_value"] for e in resource["config_entries"]
                        if e["config_names"] in ("cleanup.policy", "retention.ms")}
        except (KafkaError, KeyError, TypeError):
            pass  # brokers without DescribeConfigs: partitions are still shown
    finally:
        await admin.close()
    return [{"topic": n, "exists": n in existing, "partitions": partitions.get(n),
             "configs": configs.get(n, {})} for n in names]


async def runners(bootstrap: str, prefix: str) -> list[dict[str, Any]]:
    """The newest heartbeat of every runner still on the compacted runners topic."""
    topic = TopicNames(prefix).runners
    c = await _consumer(bootstrap)
    latest: dict[bytes, Any] = {}
    try:
        parts = c.partitions_for_topic(topic) or set()
        if not parts:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        end = await c.end_offsets(tps)
        deadline = time.monotonic() + _TIMEOUT_MS / 1000
        while [tp for tp in tps if await c.position(tp) < end[tp]]:
            if time.monotonic() > deadline:
                raise BusError(f"timed out reading {topic}")
            for msgs in (await c.getmany(timeout_ms=500)).values():
                for m in msgs:
                    if m.value is None:
                        latest.pop(m.key, None)
                        continue
                    try:
                        latest[m.key] = heartbeat_decoder.decode(m.value)
                    except msgspec.DecodeError:
                        continue
    finally:
        await c.stop()
    now_ms = int(time.time() * 1000)
    return [msgspec.to_builtins(hb) | {"age_s": round((now_ms - hb.at_ms) / 1000, 1)}
            for hb in latest.values()]


async def group_lag(bootstrap: str, prefix: str, group: str) -> dict[str, Any]:
    """Records on the requests topic not yet committed by the runners' group."""
    topic = TopicNames(prefix).requests
    # A consumer that names the group but never subscribes reads its committed offsets
    # without joining it (the consumer's OffsetFetch also suits more brokers than the
    # admin client's).
    c = await _consumer(bootstrap, group)
    per: dict[str, int] = {}
    try:
        parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        end = await c.end_offsets(tps) if tps else {}
        begin = await c.beginning_offsets(tps) if tps else {}
        for tp in tps:
            committed = await c.committed(tp)
            start = committed if committed is not None and committed >= 0 else begin[tp]
            per[str(tp.partition)] = max(0, end[tp] - start)
    except KafkaError as exc:
        raise BusError(f"cannot read the offsets of group {group}: {exc}") from exc
    finally:
        await c.stop()
    return {"group": group, "topic": topic, "total": sum(per.values()), "partitions": per}
