"""The closed-loop load generator: C clients, one request in flight each, keep-alive."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import numpy as np


@dataclass
class LoadResult:
    clients: int
    seconds: float
    ok: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    first_error: str = ""

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


async def closed_loop(url: str, body: bytes, headers: dict[str, str], clients: int,
                      warmup_s: float, measure_s: float, ok_marker: bytes,
                      on_window: Callable[[], None] | None = None) -> LoadResult:
    """Each client posts ``body`` to ``url`` in a loop; only the measure window counts.
    ``on_window`` is called as the window opens and as it closes (to read CPU clocks)."""
    result = LoadResult(clients=clients, seconds=measure_s)
    if on_window is not None:
        loop = asyncio.get_running_loop()
        loop.call_later(warmup_s, on_window)
        loop.call_later(warmup_s + measure_s, on_window)
    hdrs = {"Content-Type": "application/json", **headers}
    conn = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    start = time.perf_counter()
    t_measure = start + warmup_s
    t_end = t_measure + measure_s

    async def client(session: aiohttp.ClientSession) -> None:
        while True:
            t0 = time.perf_counter()
            if t0 >= t_end:
                return
            try:
                async with session.post(url, data=body, headers=hdrs) as resp:
                    data = await resp.read()
                    good = resp.status == 200 and ok_marker in data
            except (aiohttp.ClientError, TimeoutError) as exc:
                good, data = False, repr(exc).encode()
            t1 = time.perf_counter()
            if t0 >= t_measure and t1 <= t_end:
                if good:
                    result.ok += 1
                    result.latencies_ms.append((t1 - t0) * 1000)
                else:
                    result.errors += 1
                    result.first_error = result.first_error or data[:300].decode(errors="replace")

    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return result
