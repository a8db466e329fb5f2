from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from schemas.bus_settings import BusSettings
from schemas.env import (
    SettingError,
    env_bool,
    env_choice,
    env_float,
    env_http_url,
    env_int,
    env_names,
    env_str,
)

DEFAULT_PROVIDERS = (
    "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider",
)

IO_BINDING_MODES = ("auto", "on", "off")

#: ``INFERQ_RUNNER_CACHE_MAX_BYTES`` and ``INFERQ_RUNNER_MAX_MODEL_BYTES`` by default.
DEFAULT_CACHE_MAX_BYTES = 20 * 1024 * 1024 * 1024
DEFAULT_MAX_MODEL_BYTES = 2 * 1024 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    bus: BusSettings = field(default_factory=BusSettings)
    #: ``INFERQ_RUNNER_ID``: this runner's id in heartbeats and results.
    runner_id: str = ""
    #: ``INFERQ_RUNNER_GROUP``: the consumer group all runners share.
    group_id: str = "inferq-runners"
    #: ``INFERQ_RUNNER_MAX_IN_FLIGHT``: requests held at once; partitions pause beyond.
    max_in_flight: int = 256
    #: ``INFERQ_RUNNER_MAX_MODELS``: ONNX Runtime sessions kept loaded (LRU).
    max_models: int = 8
    #: ``INFERQ_RUNNER_PRELOAD``: models loaded before the runner joins its group, comma
    #: separated: ``name:version``, ``name`` (its newest version), ``*`` (every model's).
    preload: tuple[str, ...] = ()
    #: ``INFERQ_MODEL_BASE_URL``: as ingest's; a preloaded model is fetched from there.
    model_base_url: str = ""
    #: ``INFERQ_RUNNER_CACHE_DIR``: where models fetched over http(s) are kept.
    cache_dir: Path = Path(".inferq/runner-cache")
    #: ``INFERQ_RUNNER_CACHE_MAX_BYTES``: what that folder keeps (fetched models and
    #: TensorRT engines), least recently used out first; loaded models' files stay.
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
    #: ``INFERQ_RUNNER_MAX_MODEL_BYTES``: the largest model fetched when the request
    #: does not carry the registered size.
    max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES
    #: ``INFERQ_PROVIDERS``: comma-separated execution providers to try, in order.
    providers: tuple[str, ...] = DEFAULT_PROVIDERS
    #: ``INFERQ_INTRA_OP_THREADS``: ONNX Runtime intra-op threads (0: one per core).
    intra_op_threads: int = 0
    #: ``INFERQ_EXECUTOR_THREADS``: threads running ``session.run`` concurrently.
    executor_threads: int = 1
    #: ``INFERQ_MAX_BATCH_SIZE``: rows a dynamic batch may hold (1: no batching).
    max_batch_size: int = 32
    #: ``INFERQ_MAX_QUEUE_DELAY_MS``: the longest a partial batch waits for requests
    #: already on their way; never applied to a lone request on an idle runner.
    max_queue_delay_ms: float = 2.0
    #: ``INFERQ_ORT_SPIN``: let ONNX Runtime's idle threads spin (faster hand-off, but
    #: they burn the cores the HTTP front door needs when the box is small).
    ort_spin: bool = False
    #: ``INFERQ_IO_BINDING``: run through ONNX Runtime's IO binding (inputs bound from
    #: host memory, outputs left on the model's device and copied back once): ``auto``
    #: on CUDA/TensorRT sessions only, ``on`` everywhere, ``off`` never.
    io_binding: str = "auto"
    #: ``INFERQ_TRT_CACHE``: keep TensorRT's engines and timing cache under
    #: ``<cache_dir>/tensorrt``, so they are built once per model, GPU and ONNX Runtime
    #: version instead of at every load.
    trt_cache: bool = True
    #: ``INFERQ_TRT_FP16``: let TensorRT choose FP16 kernels (faster on most GPUs; the
    #: results differ slightly from FP32).
    trt_fp16: bool = False
    #: ``INFERQ_INLINE_RUN_US``: runs predicted shorter than this are made on the event
    #: loop instead of an executor thread (whose hand-off costs more); 0: never.
    inline_run_us: float = 200.0
    #: ``INFERQ_INLINE_LIMIT_MS``: an event-loop run that outlives this is terminated
    #: and run again in an executor thread (a model whose time depends on its inputs'
    #: values); the loop stalls at most ~1.5 times it, once. Must exceed the inline bound.
    inline_limit_ms: float = 20.0
    #: ``INFERQ_ALLOW_PRIVATE_URLS``: let Binary fileUrls name loopback/private hosts.
    allow_private_urls: bool = False
    #: ``INFERQ_FETCH_MAX_BYTES`` / ``INFERQ_FETCH_TIMEOUT_S``: bounds on one input fetch.
    fetch_max_bytes: int = 64 * 1024 * 1024
    fetch_timeout_s: float = 30.0
    #: ``INFERQ_FILES_DIR``: uploaded files (``inferq-file://<id>`` inputs), shared with
    #: ingest like the model store; read from disk, never fetched.
    files_dir: Path = Path(".inferq/files")
    #: ``INFERQ_HEARTBEAT_S``: seconds between heartbeats on the runners topic.
    heartbeat_s: float = 5.0
    #: ``INFERQ_RUNNER_HOST`` / ``INFERQ_RUNNER_PORT``: health and metrics (0: any free port).
    http_host: str = "127.0.0.1"
    http_port: int = 8001

    @property
    def trt_cache_dir(self) -> Path | None:
        """Where TensorRT's engines and timing cache are kept, or None."""
        return self.cache_dir / "tensorrt" if self.trt_cache else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RunnerSettings:
        env = os.environ if env is None else env
        bus = BusSettings.from_env(env)
        settings = cls(
            bus=bus,
            runner_id=env_str(env, "INFERQ_RUNNER_ID", f"{socket.gethostname()}-{os.getpid()}"),
            group_id=env_str(env, "INFERQ_RUNNER_GROUP", "inferq-runners"),
            max_in_flight=env_int(env, "INFERQ_RUNNER_MAX_IN_FLIGHT", 256, minimum=1),
            max_models=env_int(env, "INFERQ_RUNNER_MAX_MODELS", 8, minimum=1),
            preload=env_names(env, "INFERQ_RUNNER_PRELOAD"),
            model_base_url=env_http_url(env, "INFERQ_MODEL_BASE_URL"),
            cache_dir=Path(env_str(env, "INFERQ_RUNNER_CACHE_DIR",
                                   str(bus.data_dir / "runner-cache"))),
            cache_max_bytes=env_int(env, "INFERQ_RUNNER_CACHE_MAX_BYTES",
                                    DEFAULT_CACHE_MAX_BYTES, minimum=1024 * 1024),
            max_model_bytes=env_int(env, "INFERQ_RUNNER_MAX_MODEL_BYTES",
                                    DEFAULT_MAX_MODEL_BYTES, minimum=1024),
            providers=env_names(env, "INFERQ_PROVIDERS") or DEFAULT_PROVIDERS,
            intra_op_threads=env_int(env, "INFERQ_INTRA_OP_THREADS", 0),
            executor_threads=env_int(env, "INFERQ_EXECUTOR_THREADS", 1, minimum=1),
            max_batch_size=env_int(env, "INFERQ_MAX_BATCH_SIZE", 32, minimum=1),
            max_queue_delay_ms=env_float(env, "INFERQ_MAX_QUEUE_DELAY_MS", 2.0, minimum=0.0),
            ort_spin=env_bool(env, "INFERQ_ORT_SPIN", False),
            io_binding=env_choice(env, "INFERQ_IO_BINDING", "auto", IO_BINDING_MODES),
            trt_cache=env_bool(env, "INFERQ_TRT_CACHE", True),
            trt_fp16=env_bool(env, "INFERQ_TRT_FP16", False),
            inline_run_us=env_float(env, "INFERQ_INLINE_RUN_US", 200.0, minimum=0.0),
            inline_limit_ms=env_float(env, "INFERQ_INLINE_LIMIT_MS", 20.0, minimum=0.1),
            allow_private_urls=env_bool(env, "INFERQ_ALLOW_PRIVATE_URLS", False),
            fetch_max_bytes=env_int(env, "INFERQ_FETCH_MAX_BYTES", 64 * 1024 * 1024, minimum=128),
            fetch_timeout_s=env_float(env, "INFERQ_FETCH_TIMEOUT_S", 30.0, minimum=0.1),
            files_dir=Path(env_str(env, "INFERQ_FILES_DIR", str(bus.data_dir / "files"))),
            heartbeat_s=env_float(env, "INFERQ_HEARTBEAT_S", 5.0, minimum=0.1),
            http_host=env_str(env, "INFERQ_RUNNER_HOST", "127.0.0.1"),
            http_port=env_int(env, "INFERQ_RUNNER_PORT", 8001),
        )
        if settings.inline_run_us and settings.inline_limit_ms * 1000 <= settings.inline_run_us:
            raise SettingError(
                f"INFERQ_INLINE_LIMIT_MS={settings.inline_limit_ms:g} must exceed "
                f"INFERQ_INLINE_RUN_US={settings.inline_run_us:g} (in ms: "
                f"{settings.inline_run_us / 1000:g})")
        return settings
