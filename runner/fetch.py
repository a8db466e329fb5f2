"""Fetching Binary inputs: a ``.npy`` file at an http(s) URL, read with hard bounds.

No redirects are followed (a redirect could point past the URL guard), the ``.npy``
header is parsed and checked before the body is read, object arrays are refused
(``allow_pickle=False``), and both the declared and the actual size are capped.
"""

from __future__ import annotations

import ast
import asyncio
import io
import math
import os
import struct
from pathlib import Path

import aiohttp
import numpy as np
import numpy.typing as npt

from outbound import errors as outbound_errors
from outbound.urlguard import check_url, guarded_connector
from runner.errors import FetchError, InputError, UrlRefused
from schemas.files import FILE_URI_PREFIX, file_id_of

_MAGIC = b"\x93NUMPY"


def parse_npy_header(prefix: bytes) -> tuple[int, np.dtype[np.generic], tuple[int, ...]]:
    """(header length, dtype, shape) from the first bytes of a ``.npy`` file."""
    if len(prefix) < 10 or not prefix.startswith(_MAGIC):
        raise InputError("not a .npy file (bad magic)")
    major = prefix[6]
    if major == 1:
        (hlen,) = struct.unpack_from("<H", prefix, 8)
        start = 10
    elif major in (2, 3):
        (hlen,) = struct.unpack_from("<I", prefix, 8)
        start = 12
    else:
        raise InputError(f"unsupported .npy version {major}")
    if hlen > 65536:
        raise InputError(".npy header is too long")
    if len(prefix) < start + hlen:
        raise InputError(".npy header is truncated")
    try:
        header = ast.literal_eval(prefix[start : start + hlen].decode("latin1"))
        dtype = np.dtype(header["descr"])
        shape = tuple(int(d) for d in header["shape"])
    except (ValueError, SyntaxError, KeyError, TypeError) as exc:
        raise InputError(f"unreadable .npy header: {exc}") from None
    if dtype.hasobject:
        raise InputError(".npy files holding Python objects are refused")
    if any(d < 0 for d in shape):
        raise InputError(".npy shape has a negative dimension")
    return start + hlen, dtype, shape


class NpyFetcher:
    def __init__(self, *, allow_private: bool, max_bytes: int, timeout_s: float,
                 files_dir: Path | None = None) -> None:
        self._allow_private = allow_private
        self._files_dir = files_dir
        self._max_bytes = max_bytes
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 10))
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=guarded_connector(self._allow_private), timeout=self._timeout,
            auto_decompress=False)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _read_upload(self, url: str) -> npt.NDArray[np.generic]:
        """An uploaded file (``inferq-file://<id>``), from the shared files dir."""
        file_id = file_id_of(url)
        if file_id is None or self._files_dir is None:
            raise InputError(f"{url[:80]!r} names no uploaded file")
        path = self._files_dir / file_id
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size > self._max_bytes:
                    raise FetchError(f"{url}: the file exceeds the limit of {self._max_bytes} "
                                     "bytes")
                data = f.read(self._max_bytes + 1)
        except FileNotFoundError:
            raise InputError(f"{url}: no such uploaded file (deleted?)") from None
        parse_npy_header(data[:65536 + 12])  # refuses object arrays before np.load
        try:
            array: npt.NDArray[np.generic] = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as exc:
            raise InputError(f"{url}: unreadable .npy: {exc}") from None
        return array

    async def fetch(self, url: str) -> npt.NDArray[np.generic]:
        assert self._session is not None, "fetcher not started"
        if url.startswith(FILE_URI_PREFIX):
            return await asyncio.to_thread(self._read_upload, url)
        try:
            await check_url(url, self._allow_private)
        except outbound_errors.UrlRefused as exc:
            raise UrlRefused(str(exc)) from None
        try:
            async with self._session.get(url, allow_redirects=False) as resp:
                if 300 <= resp.status < 400:
                    raise FetchError(f"fetching {url}: redirects are not followed")
                if resp.status != 200:
                    raise FetchError(f"fetching {url}: HTTP {resp.status}")
                if resp.content_length is not None and resp.content_length > self._max_bytes:
                    raise FetchError(
                        f"fetching {url}: {resp.content_length} bytes exceed the limit "
                        f"of {self._max_bytes}"
                    )
                prefix = await resp.content.read(12)
                while len(prefix) < 12 and not resp.content.at_eof():
                    prefix += await resp.content.read(12 - len(prefix))
                if len(prefix) >= 12 and prefix.startswith(_MAGIC):
                    hlen = (struct.unpack_from("<H", prefix, 8)[0] + 10 if prefix[6] == 1
                            else struct.unpack_from("<I", prefix, 8)[0] + 12)
                    if hlen <= 65536 + 12:
                        prefix += await resp.content.readexactly(max(0, hlen - len(prefix)))
                start, dtype, shape = parse_npy_header(prefix)
                body_size = math.prod(shape) * dtype.itemsize
                if start + body_size > self._max_bytes:
                    raise FetchError(
                        f"fetching {url}: array of {body_size} bytes exceeds the limit of "
                        f"{self._max_bytes}"
                    )
                body = await resp.content.readexactly(body_size)
        except UrlRefused:
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FetchError(f"fetching {url} failed: {exc or type(exc).__name__}") from None
        except EOFError:
            raise InputError(f"fetching {url}: the .npy body is shorter than its header says"
                             ) from None
        array: npt.NDArray[np.generic] = np.load(io.BytesIO(prefix[:start] + body),
                                                 allow_pickle=False)
        return array
