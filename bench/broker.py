"""The broker's own round trip: produce -> consume -> produce -> consume, as a request
and its result travel, through one forwarder, with the same client settings as inferq."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


@dataclass
class RoundTrip:
    fetch_max_wait_ms: int
    p50_ms: float
    p99_ms: float
    count: int
    broker_cpu_ms_per_trip: float


async def round_trip(bootstrap: str, fetch_max_wait_ms: int, seconds: float,
                     broker_cpu: callable) -> RoundTrip:  # type: ignore[valid-type]
    a, b = f"rt-{uuid.uuid4().hex[:8]}-a", f"rt-{uuid.uuid4().hex[:8]}-b"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(a, 1, 1), NewTopic(b, 1, 1)])
    await admin.close()
    kw = {"bootstrap_servers": bootstrap, "fetch_max_wait_ms": fetch_max_wait_ms,
          "auto_offset_reset": "earliest", "enable_auto_commit": False}
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks="all")
    fwd_in = AIOKafkaConsumer(a, group_id=f"g-{a}", **kw)
    back = AIOKafkaConsumer(b, group_id=f"g-{b}", **kw)
    await prod.start()
    await fwd_in.start()
    await back.start()
    payload = b"x" * 1024

    async def forwarder() -> None:
        async for msg in fwd_in:
            await prod.send_and_wait(b, msg.value, key=msg.key)
            await fwd_in.commit()

    fwd = asyncio.create_task(forwarder())
    lat: list[float] = []
    try:
        for _ in range(20):  # warm-up: joins, metadata
            await prod.send_and_wait(a, payload)
            await asyncio.wait_for(back.getone(), 30)
        cpu0 = broker_cpu()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            await prod.send_and_wait(a, payload)
            await asyncio.wait_for(back.getone(), 30)
            lat.append((time.perf_counter() - t0) * 1000)
        cpu = broker_cpu() - cpu0
    finally:
        fwd.cancel()
        await asyncio.gather(fwd, return_exceptions=True)
        for c in (fwd_in, back):
            await c.stop()
        await prod.stop()
    return RoundTrip(fetch_max_wait_ms, float(np.percentile(lat, 50)),
                     float(np.percentile(lat, 99)), len(lat), cpu * 1000 / max(1, len(lat)))
