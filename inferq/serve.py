"""Running a Starlette app under uvicorn (uvloop + httptools), with SIGTERM draining."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from starlette.applications import Starlette


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
        app, host=host, port=port, loop="uvloop", http="httptools", lifespan="on",
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


def serve(app: Starlette, host: str, port: int,
          when_started: Callable[[uvicorn.Server], Awaitable[None]] | None = None) -> None:
    srv = server(app, host, port)

    async def main() -> None:
        watcher: asyncio.Task[None] | None = None
        if when_started is not None:
            async def watch() -> None:
                while not srv.started:
                    if srv.should_exit:
                        return
                    await asyncio.sleep(0.05)
                await when_started(srv)

            watcher = asyncio.create_task(watch())
        try:
            await srv.serve()
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
