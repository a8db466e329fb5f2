"""The embedded bus's storage: one in-memory partition log per topic, persisted to disk.

Each topic is an append-only file of length-prefixed msgpack frames. On load, compacted
topics keep the newest record of each key (tombstones remove the key) and every topic
keeps at most ``max_records``; the file is then rewritten, and rewritten again whenever
what was appended since outgrows ``rewrite_bytes``, so disk use stays bounded.
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
        rewrite_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.topic = topic
        self.compact = compact
        self.max_records = max_records
        self.records: list[Record] = []
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
                self.records.append(
                    Record(self.topic, 0, offset, key, value, tuple(headers), ts)
                )
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
        if len(self.records) > self.max_records:
            del self.records[: len(self.records) - self.max_records]

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
        if self._file is not None:
            frame = self._frame(record)
            self._file.write(frame)
            self._written += len(frame)
            if not self._flush_queued:
                self._queue_flush()
        # Trim in steps of a tenth so that appends stay O(1) amortised.
        if len(self.records) > self.max_records + self.max_records // 10:
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
