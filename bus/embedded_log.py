"""The embedded bus's storage: one in-memory partition log per topic, persisted to disk.

Each topic is an append-only file of length-prefixed msgpack frames. A topic keeps at
most ``max_records`` records and ``max_bytes`` of keys, values and headers (a tombstone's
key counts), dropping its oldest records past either bound; the newest record is always
kept, even one larger than ``max_bytes`` alone. While running, a topic is trimmed back
to the bounds once it exceeds one by a tenth, so appends stay O(1) amortised; on load
the bounds are exact, applied after compacted topics keep the newest record of each key
(tombstones remove the key). The
file is rewritten from what is kept on load and again whenever what was appended since
outgrows ``rewrite_bytes``, so the file holds what is kept (plus framing) and at most
``rewrite_bytes`` more. Offsets keep counting past dropped records; a read from a
dropped position starts at the oldest record kept.
Writes are flushed to the OS once per event-loop tick, not per record: appends made in
one tick (a request, its event, another request's result...) share one ``flush``, which
is queued with ``call_soon`` by the tick's first append, and ``close`` flushes the rest.
So a record survives a process crash (not a power cut) from the end of the loop tick
that appended it; a crash inside that tick can lose what it appended. Without a running
loop (tools, tests) every append is flushed at once.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import struct
from pathlib import Path
from typing import BinaryIO

import msgspec

from bus.base import Headers, Record

_FRAME = struct.Struct("<I")
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]], int])


class PartitionLog:
    def __init__(
        self,
        topic: str,
        path: Path | None,
        *,
        compact: bool,
        max_records: int,
        max_bytes: int = 256 * 1024 * 1024,
        rewrite_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.topic = topic
        self.compact = compact
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.records: list[Record] = []
        #: Bytes of keys, values and headers held in ``records`` (what ``max_bytes`` bounds).
        self.held_bytes = 0
        self.next_offset = 0
        self._path = path
        self._file: BinaryIO | None = None
        self._written = 0
        self._flush_queued = False
        self._rewrite_bytes = rewrite_bytes
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        if path.exists():
            data = path.read_bytes()
            pos = 0
            while pos + 4 <= len(data):
                (size,) = _FRAME.unpack_from(data, pos)
                if pos + 4 + size > len(data):
                    break  # a torn last frame from a crash mid-write
                offset, key, value, headers, ts = _dec.decode(data[pos + 4 : pos + 4 + size])
                record = Record(self.topic, 0, offset, key, value, tuple(headers), ts)
                self.records.append(record)
                self.held_bytes += _size(record)
                self.next_offset = offset + 1
                pos += 4 + size
        self._trim()
        self._rewrite()

    def _trim(self) -> None:
        if self.compact:
            newest: dict[bytes | None, Record] = {}
            for r in self.records:
                newest.pop(r.key, None)
                newest[r.key] = r
            self.records = [r for r in newest.values() if r.value is not None]
            self.records.sort(key=lambda r: r.offset)
            self.held_bytes = sum(map(_size, self.records))
        drop = max(0, len(self.records) - self.max_records)
        dropped = sum(map(_size, self.records[:drop]))
        # Past the byte bound, drop the oldest too, but never the newest record.
        while drop < len(self.records) - 1 and self.held_bytes - dropped > self.max_bytes:
            dropped += _size(self.records[drop])
            drop += 1
        del self.records[:drop]
        self.held_bytes -= dropped

    def _rewrite(self) -> None:
        if self._path is None:
            return
        if self._file is not None:
            self._file.close()
        tmp = self._path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            for r in self.records:
                f.write(self._frame(r))
        os.replace(tmp, self._path)
        self._file = open(self._path, "ab")  # noqa: SIM115 - owned until close()
        self._written = 0

    @staticmethod
    def _frame(r: Record) -> bytes:
        body = _enc.encode((r.offset, r.key, r.value, list(r.headers), r.timestamp_ms))
        return _FRAME.pack(len(body)) + body

    def append(self, key: bytes | None, value: bytes | None, headers: Headers, ts: int) -> Record:
        record = Record(self.topic, 0, self.next_offset, key, value, headers, ts)
        self.next_offset += 1
        self.records.append(record)
        self.held_bytes += _size(record)
        if self._file is not None:
            frame = self._frame(record)
            self._file.write(frame)
            self._written += len(frame)
            if not self._flush_queued:
                self._queue_flush()
        # Trim in steps of a tenth so that appends stay O(1) amortised.
        if (
            len(self.records) > self.max_records + self.max_records // 10
            or self.held_bytes > self.max_bytes + self.max_bytes // 10
        ):
            self._trim()
        if self._written > self._rewrite_bytes:
            self._trim()
            self._rewrite()
        return record

    def _queue_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush()
            return
        self._flush_queued = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_queued = False
        if self._file is not None:
            self._file.flush()

    def read(self, position: int, max_records: int) -> list[Record]:
        """Records at offsets >= ``position`` (compaction leaves gaps)."""
        if not self.records or position >= self.next_offset:
            return []
        i = bisect.bisect_left(self.records, position, key=lambda r: r.offset)
        return self.records[i : i + max_records]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _size(r: Record) -> int:
    """What a record holds against ``max_bytes``: key, value and headers."""
    size = len(r.key or b"") + len(r.value or b"")
    for name, value in r.headers:
        size += len(name.encode()) + len(value)
    return size
