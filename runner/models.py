"""The model cache: fetch by URI, verify sha256, keep a bounded set of sessions loaded."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import onnxruntime as ort

from runner import disk_cache
from runner.cpu_quota import Cores
from runner.errors import ModelLoadError
from runner.providers import device_of
from runner.settings import DEFAULT_CACHE_MAX_BYTES, DEFAULT_MAX_MODEL_BYTES
from runner.tensorrt import TENSORRT, TensorRTOptions, with_tensorrt_options
from schemas.messages import ModelRef
from schemas.registry import TensorSpec
from schemas.tensors import ORT_TYPE_TO_DTYPE

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    ref: ModelRef
    session: ort.InferenceSession
    inputs: dict[str, TensorSpec]
    outputs: tuple[str, ...]
    providers: tuple[str, ...]
    #: Where runs leave their outputs through IO binding (``"cuda"``, ``"cpu"``), or None
    #: for plain ``session.run``.
    bind_device: str | None = None
    #: False when an output's rows may not follow the requests' (``unbatchable_because``
    #: says why): its batch could not be split back, or split wrongly by chance.
    batchable: bool = True


def _specs(args: Sequence[ort.NodeArg]) -> list[TensorSpec]:
    return [
        TensorSpec(
            name=a.name,
            dtype=ORT_TYPE_TO_DTYPE.get(a.type, a.type),
            shape=tuple(d if isinstance(d, int) else -1 for d in a.shape),
        )
        for a in args
    ]


def unbatchable_because(inputs: Sequence[ort.NodeArg], outputs: Sequence[ort.NodeArg]
                        ) -> str | None:
    """Why a batch's outputs could not be split back into the requests' rows, or None.

    A fixed first dimension never follows the requests' rows. A named one follows them
    only when it is named as an input's first dimension is: named otherwise (an input's
    other dimension, say), its size could equal the batch's rows by chance and split into
    answers made of the other requests' data. Unnamed dimensions, and the ``unk__`` names
    converters make up, are left to the split's check at run time.
    """
    names = {i.shape[0] for i in inputs if i.shape and isinstance(i.shape[0], str)}
    for o in outputs:
        first = o.shape[0] if o.shape else None
        if isinstance(first, int):
            return f"output {o.name!r} has a fixed first dimension ({first})"
        if (isinstance(first, str) and names and first not in names
                and not first.startswith("unk__")):
            return (f"output {o.name!r} has first dimension {first!r}, not its inputs' "
                    + ", ".join(repr(n) for n in sorted(names)))
    return None


def fitted_intra_op_threads(requested: int, executor_threads: int, cores: Cores) -> int:
    """``requested``, or (0) the cores this process may use (its affinity capped by a
    cgroup CPU quota: ``runner/cpu_quota.py``) shared out among the executor threads, so
    concurrent runs never oversubscribe the machine or its container's quota."""
    if requested > 0:
        return requested
    return max(1, cores.usable // max(1, executor_threads))


def bind_device(mode: str, providers: Sequence[str], inputs: Iterable[TensorSpec]
                ) -> str | None:
    """Where a session's runs leave their outputs through IO binding, or None for plain
    runs: ``auto`` binds on CUDA/TensorRT only (on the CPU provider ``session.run``
    already reads the numpy inputs in place), ``on`` everywhere. String tensors never
    bind (ORT keeps them on the host)."""
    gpu = device_of(providers) == "cuda"
    if mode == "off" or (mode == "auto" and not gpu):
        return None
    if any(spec.dtype == "string" for spec in inputs):
        return None
    return "cuda" if gpu else "cpu"


def warm_up_rows(model: LoadedModel, max_batch: int) -> tuple[int, ...]:
    """The batch sizes a model's warm-up runs at: 1, and on CUDA or TensorRT also
    ``max_batch`` where the batcher may batch it (every input's first dimension dynamic).

    Given no explicit optimization profile, ORT's TensorRT provider builds an engine for
    the input shapes it has seen and builds it again when a batch falls outside them. Run
    at 1 and at the batcher's limit while loading, the range every batch falls in is
    built then, not by the first full batches under load. On the CPU provider a larger
    warm-up would only reserve arena memory that traffic may never need."""
    if max_batch <= 1 or not model.batchable or device_of(model.providers) != "cuda":
        return (1,)
    specs = model.inputs.values()
    if not specs or any(not s.shape or s.shape[0] != -1 or s.dtype == "string"
                        for s in specs):
        return (1,)
    return (1, max_batch)


def warm_up(model: LoadedModel, max_batch: int = 1) -> None:
    """Runs on zeros (other dynamic dims as 1) at ``warm_up_rows``, so the first
    requests do not pay for ORT's lazy allocations, kernel choices and, on TensorRT,
    engine builds. Best effort: a model that needs real data to run still loads."""
    for rows in warm_up_rows(model, max_batch):
        feeds = {}
        for spec in model.inputs.values():
            shape = tuple(1 if d < 0 else d for d in spec.shape)
            if rows > 1:
                shape = (rows, *shape[1:])
            if spec.dtype == "string":
                feeds[spec.name] = np.full(shape, "", dtype=object)
            else:
                feeds[spec.name] = np.zeros(shape, dtype=spec.dtype)
        try:
            model.session.run(None, feeds)
        except Exception as exc:  # only a hint; the model may need data-dependent shapes
            log.info("warm-up run skipped: %s", exc,
                     extra={"model": model.ref.name, "rows": rows})
            return


class ModelCache:
    def __init__(
        self,
        *,
        providers: Sequence[str],
        cache_dir: Path,
        max_models: int,
        cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES,
        max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES,
        intra_op_threads: int,
        executor: Executor,
        spin: bool = False,
        warm_up: bool = True,
        warm_batch: int = 1,
        io_binding: str = "auto",
        tensorrt: TensorRTOptions | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._providers = list(providers)
        self._tensorrt = tensorrt or TensorRTOptions()
        self._cache_dir = cache_dir
        self._cache_max_bytes = cache_max_bytes
        self._max_model_bytes = max_model_bytes
        self._max = max_models
        self._intra = intra_op_threads
        self._executor = executor
        self._spin = spin
        self._warm_up = warm_up
        self._warm_batch = warm_batch
        self._io_binding = io_binding
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        #: Each load under way, by sha256: what it loads and its outcome.
        self._loading: dict[str, tuple[ModelRef, asyncio.Future[LoadedModel]]] = {}
        #: Called as a load begins and as it ends (loaded or failed).
        self._on_change = on_change or (lambda: None)

    @property
    def loaded(self) -> list[str]:
        return [m.ref.id for m in self._loaded.values()]

    @property
    def loading(self) -> list[str]:
        return [ref.id for ref, _ in self._loading.values()]

    async def get(self, ref: ModelRef, *, max_batch: int = 0) -> LoadedModel:
        """The loaded model, loading it first if need be; a load warms it up at
        ``max_batch`` rows where ``warm_up_rows`` says so (0: the cache's ``warm_batch``,
        the runner's default batch limit)."""
        model = self._loaded.get(ref.sha256)
        if model is not None:
            self._loaded.move_to_end(ref.sha256)
            return model
        under_way = self._loading.get(ref.sha256)
        if under_way is None:
            pending: asyncio.Future[LoadedModel] = asyncio.ensure_future(
                self._load(ref, max_batch or self._warm_batch))
            self._loading[ref.sha256] = (ref, pending)
            pending.add_done_callback(lambda _: self._load_ended(ref.sha256))
            self._on_change()
        else:
            pending = under_way[1]
        return await asyncio.shield(pending)

    def _load_ended(self, sha256: str) -> None:
        self._loading.pop(sha256, None)
        self._on_change()

    async def _load(self, ref: ModelRef, max_batch: int) -> LoadedModel:
        path = await self._local_file(ref)
        loop = asyncio.get_running_loop()
        try:
            model = await loop.run_in_executor(self._executor, self._open, ref, path, max_batch)
        except FileNotFoundError:
            # Another runner sharing the cache folder pruned it just now: once more.
            path = await self._local_file(ref)
            model = await loop.run_in_executor(self._executor, self._open, ref, path, max_batch)
        self._loaded[ref.sha256] = model
        while len(self._loaded) > self._max:
            _, evicted = self._loaded.popitem(last=False)
            log.info("model evicted", extra={"model": evicted.ref.name})
        # After loading: TensorRT writes its engines while the session is made.
        keep = {*self._loaded, *self._loading}
        await loop.run_in_executor(self._executor, disk_cache.prune, self._cache_dir,
                                   self._cache_max_bytes, keep)
        log.info("model loaded", extra={"model": f"{ref.name}:{ref.version}",
                                        "providers": list(model.providers),
                                        "io_binding": model.bind_device})
        return model

    def _open(self, ref: ModelRef, path: Path, max_batch: int) -> LoadedModel:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != ref.sha256:
            raise ModelLoadError(f"model {ref.name}:{ref.version}: sha256 mismatch for {ref.uri}")
        opts = ort.SessionOptions()
        if self._intra:
            opts.intra_op_num_threads = self._intra
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Requests run one batch at a time per executor thread: inter-op parallelism
        # only adds threads fighting for the same cores.
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if not self._spin:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = self._session(ref, path, opts)
        inputs = {s.name: s for s in _specs(session.get_inputs())}
        providers = tuple(session.get_providers())
        unbatchable = unbatchable_because(session.get_inputs(), session.get_outputs())
        model = LoadedModel(
            ref=ref,
            session=session,
            inputs=inputs,
            outputs=tuple(o.name for o in session.get_outputs()),
            providers=providers,
            bind_device=bind_device(self._io_binding, providers, inputs.values()),
            batchable=unbatchable is None,
        )
        if unbatchable is not None:
            log.info("model not batched: %s", unbatchable,
                     extra={"model": f"{ref.name}:{ref.version}"})
        if self._warm_up:
            warm_up(model, max_batch)
        return model

    def _session(self, ref: ModelRef, path: Path, opts: ort.SessionOptions
                 ) -> ort.InferenceSession:
        """The session, with TensorRT's caches where TensorRT is asked for. Options it
        refuses, or a cache folder that cannot be made, never make a model unloadable:
        it loads again on the plain providers, and the log says why."""
        if TENSORRT in self._providers:
            try:
                providers = with_tensorrt_options(self._providers, self._tensorrt, ref.sha256)
                return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
            except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
                log.warning("loading without TensorRT's options: %s", exc,
                            extra={"model": f"{ref.name}:{ref.version}"})
        try:
            return ort.InferenceSession(str(path), sess_options=opts, providers=self._providers)
        except Exception as exc:
            raise ModelLoadError(f"model {ref.name}:{ref.version} does not load: {exc}") from exc

    async def _local_file(self, ref: ModelRef) -> Path:
        parts = urlsplit(ref.uri)
        if parts.scheme == "file":
            path = Path(unquote(parts.path))
            if not path.is_file():
                raise ModelLoadError(f"model file {path} does not exist")
            return path
        if parts.scheme not in ("http", "https"):
            raise ModelLoadError(f"model URI scheme {parts.scheme!r} is not supported")
        path = await disk_cache.fetch_model(ref, self._cache_dir, self._max_model_bytes)
        disk_cache.touch(path)
        return path
