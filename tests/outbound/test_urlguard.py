"""The shared outbound URL guard refuses private targets before any connection is made.

A real listening socket on 127.0.0.1 counts the connections it accepts; every refused
URL points at it in some disguise, and the count must stay zero. The guard is checked
both at the front door (``check_url``) and inside the HTTP client (the resolver), since
the resolver is what stops a name that changes its answer between check and connect.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from outbound.errors import UrlRefused
from outbound.urlguard import address_allowed, check_url, guarded_connector


@pytest.fixture
async def listener() -> AsyncIterator[tuple[int, list[int]]]:
    accepted: list[int] = []

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield port, accepted
    server.close()
    await server.wait_closed()


def disguises(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/",            # loopback
        f"http://localhost:{port}/",            # a name resolving to loopback
        f"http://2130706433:{port}/",           # decimal 127.0.0.1
        f"http://0x7f000001:{port}/",           # hex 127.0.0.1
        f"http://0x7f.1:{port}/",               # short hex form
        f"http://[::ffff:127.0.0.1]:{port}/",   # IPv4-mapped IPv6
        f"http://[::1]:{port}/",                # IPv6 loopback
        "http://10.0.0.1/",                     # private
        "http://192.168.1.1/",                  # private
        "http://172.16.0.1/",                   # private
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "http://[fe80::1]/",                    # IPv6 link-local
        "http://0.0.0.0/",                      # unspecified
        f"ftp://127.0.0.1:{port}/",             # non-http schemes
        "file:///etc/passwd",
        f"gopher://127.0.0.1:{port}/",
        f"http://user:pw@127.0.0.1:{port}/",    # credentials
    ]


async def test_check_url_refuses_every_disguise(listener: tuple[int, list[int]]) -> None:
    port, accepted = listener
    for url in disguises(port):
        with pytest.raises(UrlRefused):
            await check_url(url, allow_private=False)
    assert accepted == []


async def test_client_resolver_refuses_even_without_the_front_check(
    listener: tuple[int, list[int]],
) -> None:
    port, accepted = listener
    async with aiohttp.ClientSession(connector=guarded_connector(False)) as session:
        for url in disguises(port)[:7]:
            with pytest.raises(aiohttp.ClientError) as info:
                async with session.get(url, allow_redirects=False):
                    pass
            err = info.value
            # aiohttp itself rejects the legacy numeric forms; the guard stops the rest.
            assert (isinstance(err, aiohttp.InvalidUrlClientError)
                    or isinstance(getattr(err, "os_error", None), UrlRefused)), (url, err)
    assert accepted == []


async def test_allow_private_lets_loopback_through(listener: tuple[int, list[int]]) -> None:
    port, accepted = listener
    await check_url(f"http://127.0.0.1:{port}/", allow_private=True)
    with pytest.raises(UrlRefused):  # the scheme rule holds even then
        await check_url(f"ftp://127.0.0.1:{port}/", allow_private=True)
    async with aiohttp.ClientSession(connector=guarded_connector(True)) as session:
        async with session.get(f"http://127.0.0.1:{port}/") as resp:
            assert resp.status == 200
    assert accepted == [1]


def test_public_addresses_pass() -> None:
    assert address_allowed("93.184.216.34")
    assert address_allowed("2606:2800:220:1:248:1893:25c8:1946")
    assert not address_allowed("::ffff:10.0.0.1")
    assert not address_allowed("224.0.0.1")
