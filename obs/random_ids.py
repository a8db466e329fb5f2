"""Random ids for every request (subtask ids, trace ids) from a pool of OS randomness.

Each request needs 40 random bytes (a UUID4 subtask id, a trace id and a span id); asking
the OS three times a request was about 3 us of the submit path. The bytes come from
``os.urandom`` all the same, 4 KiB at a time, so the ids are exactly as unpredictable; a
forked child refills its own pool rather than repeat its parent's ids.
"""

from __future__ import annotations

import os

_POOL_BYTES = 4096


class _Pool:
    __slots__ = ("buf", "pos", "pid")

    def __init__(self) -> None:
        self.buf = b""
        self.pos = 0
        self.pid = 0

    def take(self, n: int) -> bytes:
        pos = self.pos
        if pos + n > len(self.buf) or self.pid != os.getpid():
            self.buf, pos, self.pid = os.urandom(_POOL_BYTES), 0, os.getpid()
        self.pos = pos + n
        return self.buf[pos : pos + n]


_pool = _Pool()


def random_bytes(n: int) -> bytes:
    """``n`` (at most 4096) bytes from the OS's randomness; never the same bytes twice."""
    if not 0 < n <= _POOL_BYTES:
        raise ValueError(f"random_bytes takes 1 to {_POOL_BYTES} bytes, not {n}")
    return _pool.take(n)


def uuid4() -> str:
    """A random (version 4, RFC 4122 variant) UUID as its usual string: what
    ``str(uuid.uuid4())`` gives, without building a ``UUID`` on the way."""
    b = bytearray(random_bytes(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def traceparent() -> str:
    """A fresh, sampled W3C traceparent (random trace and span ids)."""
    h = random_bytes(24).hex()
    return f"00-{h[:32]}-{h[32:]}-01"
