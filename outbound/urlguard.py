"""The outbound URL guard: which URLs a service may call (runner fetches, webhooks).

http/https only; the host must resolve to public addresses only (every address, so a
name that also resolves to loopback is refused), unless private addresses are allowed.
IP literals in any form the resolver accepts (``2130706433``, ``0x7f.1``, IPv4-mapped
IPv6) end up as addresses and are checked the same way. The connector below checks
names in its resolver and every address again as it opens the socket, so the address
checked is the address used (no DNS rebinding between check and connect).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from outbound.errors import UrlRefused


def address_allowed(addr: str) -> bool:
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url_syntax(url: str) -> str:
    """The host of an http(s) URL; UrlRefused for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UrlRefused(f"only http and https URLs are allowed, not {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise UrlRefused("the URL has no host")
    if parts.username or parts.password:
        raise UrlRefused("URLs with credentials are not allowed")
    return parts.hostname


class GuardedResolver(AbstractResolver):
    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                           family=socket.AF_UNSPEC)
        except socket.gaierror as exc:
            raise UrlRefused(f"cannot resolve {host!r}: {exc.strerror}") from None
        out: list[ResolveResult] = []
        for fam, _, proto, _, sockaddr in infos:
            addr = str(sockaddr[0])
            if not self.allow_private and not address_allowed(addr):
                raise UrlRefused(f"{host!r} resolves to a non-public address ({addr})")
            out.append(ResolveResult(hostname=host, host=addr, port=int(sockaddr[1]),
                                     family=fam, proto=proto, flags=socket.AI_NUMERICHOST))
        if not out:
            raise UrlRefused(f"{host!r} has no addresses")
        return out

    async def close(self) -> None:
        return None


async def check_url(url: str, allow_private: bool) -> None:
    """Refuse a URL before connecting: scheme, credentials, and every address."""
    host = check_url_syntax(url)
    await GuardedResolver(allow_private).resolve(host.strip("[]"))



def guarded_connector(allow_private: bool, *, limit: int = 64) -> aiohttp.TCPConnector:
    """A connector that checks names as it resolves them and every address it dials.

    aiohttp skips the resolver for IP literals, so the socket factory checks the final
    address too: whatever the URL said, no socket to a non-public address is opened.
    """

    def open_socket(addr_info: tuple[Any, ...]) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        addr = str(sockaddr[0])
        if not allow_private and not address_allowed(addr):
            raise UrlRefused(f"refusing to connect to a non-public address ({addr})")
        return socket.socket(family=family, type=type_, proto=proto)

    return aiohttp.TCPConnector(resolver=GuardedResolver(allow_private), limit=limit,
                                ttl_dns_cache=0, socket_factory=open_socket)
