"""Each response in one write (``inferq/one_write.py``), over real sockets.

A recording wrapper around uvloop's transport sits under ``HeadHeldTransport`` and keeps
what reached the socket, write by write; clients are real (httpx, a raw socket).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from inferq.one_write import HeadHeldTransport, OneWriteHttpToolsProtocol
from inferq.serve import bound_port, server


class _Recording:
    """The real transport, keeping a copy of every write."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _app(gate: asyncio.Event) -> Starlette:
    async def answer(request: Request) -> Response:
        return JSONResponse({"ok": True, "n": 3})

    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            await gate.wait()  # the client sets it once it has the head
            yield b"first;"
            yield b"second"
        return StreamingResponse(chunks(), media_type="text/plain")

    return Starlette(routes=[Route("/answer", answer, methods=["GET", "HEAD"]),
                             Route("/stream", stream)])


@asynccontextmanager
async def _serving() -> AsyncIterator[tuple[str, list[bytes], asyncio.Event]]:
    writes: list[bytes] = []
    gate = asyncio.Event()

    class Spied(OneWriteHttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(_Recording(transport, writes))  # type: ignore[arg-type]

    config = uvicorn.Config(_app(gate), host="127.0.0.1", port=0, http=Spied,
                            lifespan="off", log_level="warning", access_log=False)
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    for _ in range(200):
        if srv.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{bound_port(srv)}", writes, gate
    finally:
        srv.should_exit = True
        await asyncio.wait_for(task, 10)


def test_the_services_serve_with_the_one_write_protocol() -> None:
    srv = server(Starlette(), "127.0.0.1", 0)
    assert srv.config.http is OneWriteHttpToolsProtocol


async def test_a_response_leaves_in_one_write() -> None:
    async with _serving() as (base, writes, _), httpx.AsyncClient(base_url=base) as client:
        for n in range(3):  # keep-alive: every response on the connection, not only the first
            r = await client.get("/answer")
            assert r.status_code == 200 and r.json() == {"ok": True, "n": 3}
            assert len(writes) == n + 1, writes
            head, _, body = writes[-1].partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK") and body == r.content


async def test_a_head_with_no_body_after_it_is_sent_on_the_next_turn() -> None:
    async with _serving() as (base, writes, gate), httpx.AsyncClient(base_url=base) as client:
        r = await client.head("/answer")  # uvicorn never writes a HEAD response's body
        assert r.status_code == 200 and r.headers["content-length"] == "17"
        assert len(writes) == 1 and writes[0].endswith(b"\r\n\r\n")

        writes.clear()
        # A stream whose first chunk waits for the client to have read the head: were the
        # head held until the next write, this would never finish.
        async with client.stream("GET", "/stream") as resp:
            assert resp.status_code == 200
            assert writes and writes[0].startswith(b"HTTP/1.1 200") and writes[0].endswith(
                b"\r\n\r\n")
            gate.set()
            body = b"".join([c async for c in resp.aiter_bytes()])
        assert body == b"first;second"


async def test_a_close_sends_the_head_it_holds_first() -> None:
    async with _serving() as (base, writes, _):
        host, port = base.removeprefix("http://").split(":")
        # httptools refuses this request line: uvicorn writes its 400 and closes at once.
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"NOT A REQUEST\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)  # to the end: closed after it
        writer.close()
        assert answer.startswith(b"HTTP/1.1 400 Bad Request") and answer.endswith(
            b"Invalid HTTP request received.")
        assert writes == [answer]

        writes.clear()
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /answer HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b'{"ok":true,"n":3}')
        assert writes == [answer]


class _Fake:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        self.aborted = True


@pytest.mark.parametrize("then", ["abort", "closing"])
async def test_a_head_is_dropped_on_a_transport_that_went_away(then: str) -> None:
    fake = _Fake()
    held = HeadHeldTransport(fake, asyncio.get_running_loop())  # type: ignore[arg-type]
    held.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert held.get_write_buffer_size() == 38 and fake.writes == []
    if then == "abort":
        held.abort()
        assert fake.aborted
    else:
        fake.closing = True
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert fake.writes == []
    held.write(b"ok")  # a body after it goes out alone
    assert fake.writes == [b"ok"]
