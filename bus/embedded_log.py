"""The embedded bus's storage: one in-memory partition log per topic, persisted to disk.

Each topic is an append-only file of length-prefixed msgpack frames. A topic keeps at
most ``max_records`` records and ``max_bytes`` of keys, values and headers (a tombstone's
key counts), dropping its oldest records past either bound; the newest record is always
kept, even one larger than ``max_bytes`` alone. While running, a topic is trimmed back
to the bounds once it exceeds one by a tenth, so appends stay O(1) amortised; on load
the bounds are exact, applied after compacted topics keep the newest record of each key
(tombstones remove the key). The
file is rewritten from what is kept on load and again whenever what was appended since
outgrows both ``rewrite_bytes`` and what is kept, so the file holds what is kept (plus
framing) and at most as much again, or ``rewrite_bytes``, more: a topic bounded by
``max_bytes`` takes at most twice that on disk. Waiting for as much as is kept bounds
the copying: each byte appended is copied about once more, however much a topic keeps
(with a fixed 64 MiB, a topic holding 256 MiB of large tensors copied 4 bytes for each
byte appended, a worker thread busy beside the model). A rewrite copies the kept
frames' bytes (each record's place in the file is kept beside it, 12 bytes a record),
not re-encoding them; with a running
loop the copying is done by a worker thread, and what is appended meanwhile follows it
(trims wait until the swap), so the loop never stalls for a whole rewrite (200,000
records of ~0.5 KiB: a 0.74 s stall before, 0.08–0.15 s of loop lag now). Until the swap
the old file stays the log; ``close`` waits for a running copy and drops it. Offsets
keep counting past dropped records; a read from a dropped position starts at the oldest
record kept.
Writes go to the OS once per event-loop tick, not per record: appends made in one tick
(a request, its event, another request's result...) are framed into one buffer, written
and flushed by a callback the tick's first append queues with ``call_soon``; ``close``
writes the rest.
So a record survives a process crash (not a power cut) from the end of the loop tick
that appended it; a crash inside that tick can lose what it appended. Without a running
loop (tools, tests) every append is flushed at once.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import struct
from array import array
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from bus.base import Headers, Record

_FRAME = struct.Struct("<I")
_COPY_CHUNK = 4 * 1024 * 1024
#: What a rewrite's last step copies on the loop; more goes to the worker first.
_TAIL_ON_LOOP = 256 * 1024
#: Copies for rewrites, one at a time across every log of the process.
_REWRITER = ThreadPoolExecutor(1, thread_name_prefix="inferq-log-rewrite")
log = logging.getLogger(__name__)
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
        #: Frames appended this tick, not yet written (``_flush``).
        self._pending = bytearray()
        self._written = 0
        # Where each record's frame starts in the file and how long it is, beside
        # ``records`` (only with a file), so that a rewrite copies frames, not records.
        self._starts = array("q")
        self._lengths = array("I")
        self._file_end = 0
        #: The copy a rewrite is waiting for (with a running loop); trims wait for the
        #: rewrite, so its snapshot of the kept frames stays valid.
        self._rewriting: Future[Any] | None = None
        self._rewrite_from = 0  # where the old file ended when the rewrite began
        self._copied_to = 0  # how far the old file has been copied
        self._tmp_at_rewrite_from = 0  # where that point lies in the new file
        self._new_starts: array[int] = array("q")  # the snapshot's frames in the new file
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
                self._starts.append(pos)
                self._lengths.append(4 + size)
                self.held_bytes += _size(record)
                self.next_offset = offset + 1
                pos += 4 + size
            self._file_end = pos  # a torn frame past it is cut off by the rewrite
        self._trim()
        self._rewrite()

    def _trim(self) -> None:
        if self.compact:
            newest: dict[bytes | None, int] = {}
            for i, r in enumerate(self.records):
                newest.pop(r.key, None)
                newest[r.key] = i
            keep = sorted(i for i in newest.values() if self.records[i].value is not None)
            self.records = [self.records[i] for i in keep]
            if self._path is not None:
                self._starts = array("q", (self._starts[i] for i in keep))
                self._lengths = array("I", (self._lengths[i] for i in keep))
            self.held_bytes = sum(map(_size, self.records))
        drop = max(0, len(self.records) - self.max_records)
        dropped = sum(map(_size, self.records[:drop]))
        # Past the byte bound, drop the oldest too, but never the newest record.
        while drop < len(self.records) - 1 and self.held_bytes - dropped > self.max_bytes:
            dropped += _size(self.records[drop])
            drop += 1
        del self.records[:drop]
        if self._path is not None:
            del self._starts[:drop]
            del self._lengths[:drop]
        self.held_bytes -= dropped

    def _rewrite(self) -> None:
        """Write the kept records' frames to a new file and swap it in, here and now."""
        if self._path is None:
            return
        if self._file is not None:
            self._flush()
            self._file.close()
            self._file = None
        tmp = self._path.with_suffix(".tmp")
        self._starts, self._file_end = _copy_frames(self._path, tmp, self._starts,
                                                    self._lengths)
        os.replace(tmp, self._path)
        self._file = open(self._path, "ab")  # noqa: SIM115 - owned until close()
        self._written = 0

    def append(self, key: bytes | None, value: bytes | None, headers: Headers, ts: int) -> Record:
        record = Record(self.topic, 0, self.next_offset, key, value, headers, ts)
        self.next_offset += 1
        self.records.append(record)
        self.held_bytes += _size(record)
        if self._file is not None:
            # The frame: its length, then msgpack of the record, encoded in place after
            # the tick's other frames (no bytes object per record, one write per tick).
            pending = self._pending
            start = len(pending)
            _enc.encode_into((record.offset, key, value, headers, ts), pending, start + 4)
            length = len(pending) - start
            _FRAME.pack_into(pending, start, length - 4)
            self._starts.append(self._file_end)
            self._lengths.append(length)
            self._file_end += length
            self._written += length
            if not self._flush_queued:
                self._queue_flush()
        if self._rewriting is not None:
            return record  # trims and the next rewrite wait for it (a moment)
        # Trim in steps of a tenth so that appends stay O(1) amortised.
        if (
            len(self.records) > self.max_records + self.max_records // 10
            or self.held_bytes > self.max_bytes + self.max_bytes // 10
        ):
            self._trim()
        if self._written > self._rewrite_bytes and self._written > self.held_bytes:
            self._trim()
            self._start_rewrite()
        return record

    def _start_rewrite(self) -> None:
        """With a running loop, rewrite through the worker thread, then swap; else now."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._rewrite()
            return
        if self._path is None or self._file is None:
            return
        self._flush()
        self._rewrite_from = self._copied_to = self._file_end
        fut = _REWRITER.submit(_copy_frames, self._path, self._path.with_suffix(".tmp"),
                               array("q", self._starts), array("I", self._lengths))
        self._watch(fut, self._frames_copied, loop)

    def _watch(self, fut: Future[Any], then: Callable[[Any], None],
               loop: asyncio.AbstractEventLoop) -> None:
        """Run ``then`` with ``fut``'s result on the loop, unless ``close`` came first."""
        self._rewriting = fut

        def step(done: Future[Any]) -> None:
            if self._rewriting is not done:
                return  # closed meanwhile: ``close`` dropped the copy
            self._rewriting = None
            try:
                then(done.result())
            except OSError as exc:
                log.error("rewriting %s failed, the old file stays: %s", self._path, exc)
                assert self._path is not None
                self._path.with_suffix(".tmp").unlink(missing_ok=True)
                self._written = 0  # try again once as much more is appended

        fut.add_done_callback(lambda done: loop.call_soon_threadsafe(step, done))

    def _frames_copied(self, copied: tuple[array[int], int]) -> None:
        self._new_starts, self._tmp_at_rewrite_from = copied
        self._copy_tail(None)

    def _copy_tail(self, _: None) -> None:
        """Copy what was appended since the last copy began: in the worker again while
        that is more than ``_TAIL_ON_LOOP``, else here, and swap the files."""
        assert self._path is not None and self._file is not None
        tmp = self._path.with_suffix(".tmp")
        self._flush()
        tail = self._file_end - self._copied_to
        if tail > _TAIL_ON_LOOP:
            fut = _REWRITER.submit(_copy_range, self._path, tmp, self._copied_to, tail)
            self._copied_to = self._file_end
            self._watch(fut, self._copy_tail, asyncio.get_running_loop())
            return
        _copy_range(self._path, tmp, self._copied_to, tail)
        os.replace(tmp, self._path)
        new_starts, self._new_starts = self._new_starts, array("q")
        shift = self._tmp_at_rewrite_from - self._rewrite_from
        new_starts.extend(start + shift for start in self._starts[len(new_starts):])
        old = self._file
        self._file = open(self._path, "ab")  # noqa: SIM115 - owned until close()
        self._starts = new_starts
        self._file_end += shift
        self._written = self._file_end - self._tmp_at_rewrite_from
        # Closing the old file frees its blocks: slow for a large file, so not here.
        _REWRITER.submit(old.close)

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
            if self._pending:
                self._file.write(self._pending)
                self._pending.clear()
            self._file.flush()

    def read(self, position: int, max_records: int) -> list[Record]:
        """Records at offsets >= ``position`` (compaction leaves gaps)."""
        records = self.records
        if not records or position >= self.next_offset:
            return []
        # Counted from the end: appends since the last compaction are contiguous, so a
        # reader that keeps up (every tail, nearly always) finds its record at once.
        i = len(records) - (self.next_offset - position)
        if i < 0 or records[i].offset != position:
            i = bisect.bisect_left(records, position, key=_offset)
        return records[i : i + max_records]

    def close(self) -> None:
        fut, self._rewriting = self._rewriting, None
        if fut is not None:
            # The old file is still the log: let the copy end (under a second), drop it.
            try:
                fut.result()
            except OSError:
                pass
            if self._path is not None:
                self._path.with_suffix(".tmp").unlink(missing_ok=True)
        if self._file is not None:
            self._flush()
            self._file.close()
            self._file = None


def _copy_frames(path: Path, tmp: Path, starts: array[int], lengths: array[int]
                 ) -> tuple[array[int], int]:
    """Copy the frames at ``starts``/``lengths`` of ``path`` into a new ``tmp``, runs of
    frames that lie back to back as one piece of bytes: their starts in ``tmp``, and its
    length."""
    new_starts: array[int] = array("q")
    out = 0
    with open(tmp, "wb") as dst:
        if not starts:
            return new_starts, out
        with open(path, "rb") as src:
            i, n = 0, len(starts)
            while i < n:
                j, end = i, starts[i] + lengths[i]
                while j + 1 < n and starts[j + 1] == end:
                    j += 1
                    end += lengths[j]
                src.seek(starts[i])
                _copy(src, dst, end - starts[i])
                for k in range(i, j + 1):
                    new_starts.append(out)
                    out += lengths[k]
                i = j + 1
    return new_starts, out


def _copy_range(path: Path, tmp: Path, start: int, size: int) -> None:
    """Append ``size`` bytes of ``path`` from ``start`` to ``tmp``."""
    with open(path, "rb") as src, open(tmp, "ab") as dst:
        src.seek(start)
        _copy(src, dst, size)


def _copy(src: BinaryIO, dst: BinaryIO, size: int) -> None:
    """``size`` bytes from ``src``'s position to ``dst``, in bounded chunks."""
    while size > 0:
        chunk = src.read(min(size, _COPY_CHUNK))
        if not chunk:
            raise OSError(f"{getattr(src, 'name', 'log')}: ended {size} bytes early")
        dst.write(chunk)
        size -= len(chunk)


def _offset(r: Record) -> int:
    return r.offset


def _size(r: Record) -> int:
    """What a record holds against ``max_bytes``: key, value and headers (names counted
    in characters: the same bytes for the ASCII names every header here has)."""
    size = len(r.key or b"") + len(r.value or b"")
    for name, value in r.headers:
        size += len(name) + len(value)
    return size
