"""Running a Starlette app under uvicorn (uvloop + httptools, each response in one write:
``inferq/one_write.py``), with SIGTERM draining."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from starlette.applications import Starlette

from inferq.one_write import OneWriteHttpToolsProtocol


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its graceful shutdown, so a cleanly drained
    process would exit -15. Handle the signals on the loop instead: drain, exit 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)


def server(app: Starlette, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        app, host=host, port=port, loop="uvloop", http=OneWriteHttpToolsProtocol, lifespan="on",
        log_level="warning", access_log=False, timeout_graceful_shutdown=30,
        backlog=4096, timeout_keep_alive=30,
    )
    return _Server(config)


def bound_port(srv: uvicorn.Server) -> int:
    """The port actually bound (useful with port 0)."""
    for s in srv.servers:
        for sock in s.sockets:
            return int(sock.getsockname()[1])
    raise RuntimeError("server has no socket")


#: Cyclic GC thresholds for the services (CPython's defaults: 700, 10, 10). A service
#: holds hundreds of thousands of long-lived objects (the embedded bus's logs, the result
#: and event books, the registry) and allocates several thousand per request, so with the
#: defaults collections ran every few requests and took ~24 % of `inferq up`'s CPU at 64
#: clients (gc callbacks, tiny model); these keep the same bounded behaviour, less often.
#: What is kept is mostly untracked besides: bus records, bus messages, the notifier's
#: stream events and ingest's lifecycles are ``gc=False`` structs, and what they hold is
#: untracked by the first collections that see it, so the objects that stay tracked for
#: each request kept fell from ~22 to ~4 and then to 1 (the notifier's per-subtask log),
#: and the collector's time per request from ~33 to ~19 us and then ~8-12 us (tiny model,
#: 64 clients; README, Performance).
GC_THRESHOLDS = (20_000, 50, 100)
#: How long a thread may hold the GIL while another waits for it (CPython's default: 5
#: ms). A runner's executor threads wait for it each time ORT returns a run, and under
#: load the event loop holds it: at 5 ms, an mlp batch of ~0.2 ms of compute came back
#: 2.9 ms after it started (the bench's inference time at 64 clients). At 1 ms, mlp did
#: +5 % requests at 8 and at 64 clients (medians of 8 alternating turns, 7 and 6 of them
#: ahead), tiny +7 % at 64 (7 of 10); README, Performance.
SWITCH_INTERVAL_S = 0.001


def serve(app: Starlette, host: str, port: int,
          when_started: Callable[[uvicorn.Server], Awaitable[None]] | None = None) -> None:
    srv = server(app, host, port)
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL_S)

    async def main() -> None:
        async def watch() -> None:
            while not srv.started:
                if srv.should_exit:
                    return
                await asyncio.sleep(0.05)
            # What startup built (modules, the app, the replayed views) lives as long as
            # the process: out of the collector's generations, collections skip it.
            gc.freeze()
            if when_started is not None:
                await when_started(srv)

        watcher = asyncio.create_task(watch())
        try:
            await srv.serve()
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
