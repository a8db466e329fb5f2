"""The runner's disk cache: models fetched over real HTTP (a server on 127.0.0.1), bounded
by their registered size and checked by sha256 before they are kept; and the cache's
byte bound, least recently used out first, loaded models' files never."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from runner import disk_cache
from runner.errors import ModelLoadError
from runner.models import ModelCache
from schemas.messages import ModelRef
from tests.local_http import serving
from tests.onnx_models import add_model


@dataclass
class FileServer:
    base: str
    files: dict[str, bytes]
    #: Paths asked for, in order.
    asked: list[str] = field(default_factory=list)
    #: Serve without Content-Length (chunked), so only the streamed size can tell.
    chunked: bool = False


@pytest.fixture
async def server() -> AsyncIterator[FileServer]:
    state = FileServer("", {})

    async def handle(request: web.Request) -> web.StreamResponse:
        state.asked.append(request.path)
        body = state.files.get(request.path)
        if body is None:
            return web.Response(status=404)
        if not state.chunked:
            return web.Response(body=body)
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(body), 64):
            await resp.write(body[i:i + 64])
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/{name}", handle)
    async with serving(app) as state.base:
        yield state


def served(server: FileServer, data: bytes, *, size: int | None = None,
           name: str = "m") -> ModelRef:
    sha = hashlib.sha256(data).hexdigest()
    server.files[f"/{sha}.onnx"] = data
    return ModelRef(name=name, version="1", uri=f"{server.base}/{sha}.onnx", sha256=sha,
                    size=len(data) if size is None else size)


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


async def test_a_fetched_model_is_kept_and_not_fetched_again(
    server: FileServer, tmp_path: Path
) -> None:
    data = add_model()
    ref = served(server, data)
    path = await disk_cache.fetch_model(ref, tmp_path, max_model_bytes=1 << 20)
    assert path == tmp_path / f"{ref.sha256}.onnx"
    assert path.read_bytes() == data
    again = await disk_cache.fetch_model(ref, tmp_path, max_model_bytes=1 << 20)
    assert again == path
    assert server.asked == [f"/{ref.sha256}.onnx"]
    assert leftovers(tmp_path) == [path.name]  # no .part left behind


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_download_over_its_registered_size_is_refused_and_not_kept(
    server: FileServer, tmp_path: Path, chunked: bool
) -> None:
    server.chunked = chunked
    data = add_model()
    ref = served(server, data, size=len(data) - 1)
    with pytest.raises(ModelLoadError, match=f"over the {len(data) - 1} bytes expected"):
        await disk_cache.fetch_model(ref, tmp_path, max_model_bytes=1 << 20)
    assert leftovers(tmp_path) == []


async def test_without_a_registered_size_the_runner_bound_applies(
    server: FileServer, tmp_path: Path
) -> None:
    data = add_model()
    ref = served(server, data, size=0)
    with pytest.raises(ModelLoadError, match=f"over the {len(data) - 1} "):
        await disk_cache.fetch_model(ref, tmp_path, max_model_bytes=len(data) - 1)
    path = await disk_cache.fetch_model(ref, tmp_path, max_model_bytes=len(data))
    assert path.read_bytes() == data


async def test_a_file_that_is_not_the_model_named_never_lands(
    server: FileServer, tmp_path: Path
) -> None:
    ref = served(server, add_model())
    server.files[f"/{ref.sha256}.onnx"] = add_model(width=8)[: ref.size]  # same size, other bytes
    with pytest.raises(ModelLoadError, match=f"model m:1: sha256 mismatch for {ref.uri}"):
        await disk_cache.fetch_model(ref, tmp_path, max_model_bytes=1 << 20)
    assert leftovers(tmp_path) == []


async def test_an_http_error_names_the_status_and_the_model(
    server: FileServer, tmp_path: Path
) -> None:
    ref = ModelRef(name="gone", version="2", uri=f"{server.base}/{'0' * 64}.onnx",
                   sha256="0" * 64, size=10)
    with pytest.raises(ModelLoadError, match=f"fetching model gone:2 from {ref.uri}: HTTP 404"):
        await disk_cache.fetch_model(ref, tmp_path, max_model_bytes=1 << 20)
    assert leftovers(tmp_path) == []


def _entry(path: Path, size: int, age_s: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    then = time.time() - age_s
    os.utime(path, (then, then))


def test_prune_drops_the_least_recently_used_until_within_the_bound(tmp_path: Path) -> None:
    old, mid, new, busy = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)
    _entry(tmp_path / f"{old}.onnx", 400, 300)
    # A TensorRT engine folder counts its files, and goes as one entry.
    engines = tmp_path / "tensorrt" / "ort-1.0" / mid
    _entry(engines / "engine.bin", 300, 200)
    os.utime(engines, (time.time() - 200,) * 2)
    _entry(tmp_path / f"{new}.onnx", 300, 10)
    _entry(tmp_path / f"{busy}.onnx", 500, 1000)  # oldest, but its model is loaded
    timing = tmp_path / "tensorrt" / "ort-1.0" / "timing.cache"
    _entry(timing, 50, 5000)
    _entry(tmp_path / f"{old}.99.part", 10, 7200)  # a dead runner's download
    _entry(tmp_path / f"{new}.98.part", 10, 1)  # a download going on now

    removed = disk_cache.prune(tmp_path, max_bytes=900, keep={busy})

    assert [e.sha256 for e in removed] == [old, mid]
    assert sorted(p.name for p in tmp_path.glob("*")) == sorted(
        [f"{new}.onnx", f"{busy}.onnx", f"{new}.98.part", "tensorrt"])
    assert not engines.exists()
    assert timing.exists()  # shared by every model, never an entry
    assert sum(e.size for e in disk_cache.entries(tmp_path)) == 800


def test_prune_keeps_what_is_in_use_even_over_the_bound(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _entry(tmp_path / f"{'a' * 64}.onnx", 400, 10)
    assert disk_cache.prune(tmp_path, max_bytes=100, keep={"a" * 64}) == []
    assert (tmp_path / f"{'a' * 64}.onnx").exists()
    assert "runner cache over its bound: the rest is in use" in caplog.text


async def test_the_model_cache_loads_over_http_and_prunes_what_it_unloaded(
    server: FileServer, tmp_path: Path
) -> None:
    first, second = served(server, add_model(), name="a"), served(server, add_model(8), name="b")
    cache_dir = tmp_path / "cache"
    with ThreadPoolExecutor(1) as pool:
        cache = ModelCache(providers=["CPUExecutionProvider"], cache_dir=cache_dir,
                           max_models=1, cache_max_bytes=max(first.size, second.size),
                           intra_op_threads=1, executor=pool)
        model = await cache.get(first)
        x = np.ones((1, 4), np.float32)
        (out,) = model.session.run(None, {"x": x})
        assert out.tolist() == [[2.0] * 4]
        assert leftovers(cache_dir) == [f"{first.sha256}.onnx"]
        # Loading the second unloads the first (max_models 1): its file is the one to go.
        await cache.get(second)
        assert leftovers(cache_dir) == [f"{second.sha256}.onnx"]
        assert cache.loaded == ["b:1"]
        # Back to the first: fetched again, since its file was pruned.
        await cache.get(first)
        assert server.asked == [f"/{first.sha256}.onnx", f"/{second.sha256}.onnx",
                                f"/{first.sha256}.onnx"]



async def test_a_file_pruned_by_another_runner_before_it_loads_is_fetched_again(
    server: FileServer, tmp_path: Path
) -> None:
    ref = served(server, add_model())

    class PrunedUnderfoot(ModelCache):
        """Another runner sharing the folder removes the file between fetch and load."""

        pruned = False

        async def _local_file(self, ref: ModelRef) -> Path:
            path = await super()._local_file(ref)
            if not self.pruned:
                self.pruned = True
                path.unlink()
            return path

    with ThreadPoolExecutor(1) as pool:
        cache = PrunedUnderfoot(providers=["CPUExecutionProvider"], cache_dir=tmp_path,
                                max_models=1, intra_op_threads=1, executor=pool)
        model = await cache.get(ref)
        assert model.ref == ref and cache.loaded == ["m:1"]
    assert server.asked == [f"/{ref.sha256}.onnx"] * 2
