"""A runner's files on disk: models fetched over http(s) and TensorRT's engines, bounded.

Both are kept by the model's sha256 under the cache folder: ``<sha256>.onnx``, and
``tensorrt/ort-<version>/<sha256>/`` (``runner.tensorrt``). Each is an entry whose last use
is its modification time, set again whenever a model is loaded. Once the entries outgrow
``max_bytes`` the least recently used go first, never those of a model loaded or loading
here (several runners may share the folder; one that finds its file gone fetches it
again). A download is bounded too: by the size the registry recorded for the model (else
``max_model_bytes``) before a byte is kept, and hashed as it arrives, so a file that is
not the model named never lands in the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from runner.errors import ModelLoadError
from schemas.messages import ModelRef

log = logging.getLogger(__name__)

#: A download's ``.part`` file older than this was left by a runner that died mid-fetch.
STALE_PART_S = 3600.0
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Entry:
    path: Path
    sha256: str
    size: int
    used_at: float


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def entries(root: Path) -> list[Entry]:
    """What the cache holds: fetched models and TensorRT engine folders."""
    found: list[Entry] = []
    candidates = list(root.glob("*.onnx")) + list(root.glob("tensorrt/ort-*/*/"))
    for path in candidates:
        try:
            found.append(Entry(path, path.name.removesuffix(".onnx"), _tree_size(path),
                               path.stat().st_mtime))
        except FileNotFoundError:  # another runner pruned it meanwhile
            continue
    return found


def touch(path: Path) -> None:
    """Mark ``path`` used now (its entry goes last when the cache is pruned)."""
    try:
        os.utime(path)
    except FileNotFoundError:
        pass


def prune(root: Path, max_bytes: int, keep: Iterable[str]) -> list[Entry]:
    """Remove the least recently used entries until the cache holds at most
    ``max_bytes``, skipping the sha256s in ``keep``; and downloads abandoned over an
    hour ago. Returns what was removed."""
    if not root.is_dir():
        return []
    now = time.time()
    for part in root.glob("*.part"):
        try:
            if now - part.stat().st_mtime > STALE_PART_S:
                part.unlink()
        except FileNotFoundError:
            continue
    held = entries(root)
    total = sum(e.size for e in held)
    kept = set(keep)
    removed: list[Entry] = []
    for entry in sorted(held, key=lambda e: e.used_at):
        if total <= max_bytes:
            break
        if entry.sha256 in kept:
            continue
        if entry.path.is_dir():
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            entry.path.unlink(missing_ok=True)
        total -= entry.size
        removed.append(entry)
        log.info("cache entry removed", extra={"path": str(entry.path), "bytes": entry.size})
    if total > max_bytes:
        log.warning("runner cache over its bound: the rest is in use",
                    extra={"bytes": total, "max_bytes": max_bytes})
    return removed


async def fetch_model(ref: ModelRef, root: Path, max_model_bytes: int,
                      timeout_s: float = 600.0) -> Path:
    """``ref``'s file from its http(s) URI, kept as ``<root>/<sha256>.onnx``: at most
    its registered size (else ``max_model_bytes``), and only if its sha256 matches."""
    path = root / f"{ref.sha256}.onnx"
    if path.is_file():
        return path
    limit = ref.size or max_model_bytes
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.part")
    name = f"{ref.name}:{ref.version}"
    try:
        digest = hashlib.sha256()
        got = 0
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(
            ref.uri, allow_redirects=False
        ) as resp:
            if resp.status != 200:
                raise ModelLoadError(f"fetching model {name} from {ref.uri}: HTTP {resp.status}")
            if resp.content_length is not None and resp.content_length > limit:
                raise ModelLoadError(f"model {name} at {ref.uri} is {resp.content_length} "
                                     f"bytes, over the {limit} bytes expected")
            with open(tmp, "wb") as f:
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    got += len(chunk)
                    if got > limit:
                        raise ModelLoadError(f"model {name} at {ref.uri} is over the "
                                             f"{limit} bytes expected")
                    digest.update(chunk)
                    f.write(chunk)
        if digest.hexdigest() != ref.sha256:
            raise ModelLoadError(f"model {name}: sha256 mismatch for {ref.uri}")
        os.replace(tmp, path)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ModelLoadError(f"fetching model {name} from {ref.uri} failed: {exc!r}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path
