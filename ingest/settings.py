from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from schemas.bus_settings import BusSettings
from schemas.env import (
    SettingError,
    env_bool,
    env_float,
    env_http_url,
    env_int,
    env_opt,
    env_str,
)


def _opt_path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


@dataclass(frozen=True, slots=True)
class IngestSettings:
    bus: BusSettings = field(default_factory=BusSettings)
    #: ``INFERQ_HOST`` / ``INFERQ_PORT``: where the HTTP server listens.
    host: str = "127.0.0.1"
    port: int = 8000
    #: ``INFERQ_PUBLIC_URL``: base URL printed in examples (defaults to host:port).
    public_url: str | None = None
    #: ``INFERQ_SYNC_TIMEOUT_S``: how long a synchronous submit blocks before `pending`.
    sync_timeout_s: float = 180.0
    #: ``INFERQ_REQUEST_DEADLINE_S``: past this age a request is answered without running.
    request_deadline_s: float = 180.0
    #: ``INFERQ_MAX_WAITERS``: synchronous calls held at once; beyond it, 503.
    max_waiters: int = 10_000
    #: ``INFERQ_MAX_BODY_BYTES``: the largest HTTP request body accepted.
    max_body_bytes: int = 8 * 1024 * 1024
    #: ``INFERQ_MAX_MODEL_BYTES``: the largest ONNX model accepted by upload.
    max_model_bytes: int = 2 * 1024 * 1024 * 1024
    #: ``INFERQ_ADMIN_TOKEN``: bearer token for /admin routes; unset disables them.
    admin_token: str | None = field(default=None, repr=False)
    #: ``INFERQ_MODEL_DIR``: the model store (uploaded ONNX files, by sha256).
    model_dir: Path = Path(".inferq/models")
    #: ``INFERQ_MODEL_BASE_URL``: where runners on other hosts fetch the store's files
    #: (``<base>/<sha256>.onnx``, the store served over http(s)); unset: its file URIs.
    model_base_url: str = ""
    #: ``INFERQ_RESULTS_CACHE``: finished results kept for retrieval by id.
    results_cache: int = 200_000
    #: ``INFERQ_RESULTS_CACHE_BYTES``: bytes of those results kept (output data, error
    #: text and about 1 KiB each besides; see ``ingest/results.py``), in every replica;
    #: the oldest go first, never the newest. With large outputs this, not the count,
    #: bounds memory. At least 1 MiB.
    results_cache_bytes: int = 256 * 1024 * 1024
    #: ``INFERQ_ALLOW_PRIVATE_URLS``: let fileUrl name loopback/private hosts (tests).
    allow_private_urls: bool = False
    #: ``INFERQ_MODEL_REPOSITORY``: a Triton-layout model repository registered at start.
    model_repository: Path | None = None
    #: ``INFERQ_MODEL_REPOSITORY_ACCOUNT``: the account owning the repository's tasks; its
    #: models are shared with every account on the v2 routes.
    model_repository_account: str = "model-repository"
    #: ``INFERQ_V2_AUTH``: require API keys on the v2 model routes (0: in-cluster use).
    v2_auth: bool = True
    #: ``INFERQ_HEARTBEAT_S``: the runners' heartbeat interval; three missed is gone.
    runner_heartbeat_s: float = 5.0
    #: ``INFERQ_FILES_DIR``: uploaded files (``POST /files``); runners read the same dir.
    files_dir: Path = Path(".inferq/files")
    #: ``INFERQ_MAX_FILE_BYTES``: the largest file ``POST /files`` accepts.
    max_file_bytes: int = 64 * 1024 * 1024
    #: ``INFERQ_RATE_LIMITS``: per key and class, ``<class>=<count>/<seconds>``, shared
    #: by every replica (see ``ingest/rate_limit.py``); empty turns rate limits off.
    rate_limits: str = "run=100/60,get=1000/60,upload=50/60"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestSettings:
        env = os.environ if env is None else env
        bus = BusSettings.from_env(env)
        s = cls(
            bus=bus,
            host=env_str(env, "INFERQ_HOST", "127.0.0.1"),
            port=env_int(env, "INFERQ_PORT", 8000),
            public_url=env_opt(env, "INFERQ_PUBLIC_URL"),
            sync_timeout_s=env_float(env, "INFERQ_SYNC_TIMEOUT_S", 180.0),
            request_deadline_s=env_float(env, "INFERQ_REQUEST_DEADLINE_S", 180.0, minimum=0.001),
            max_waiters=env_int(env, "INFERQ_MAX_WAITERS", 10_000, minimum=1),
            max_body_bytes=env_int(env, "INFERQ_MAX_BODY_BYTES", 8 * 1024 * 1024, minimum=1024),
            max_model_bytes=env_int(
                env, "INFERQ_MAX_MODEL_BYTES", 2 * 1024 * 1024 * 1024, minimum=1024
            ),
            admin_token=env_opt(env, "INFERQ_ADMIN_TOKEN"),
            model_dir=Path(env_str(env, "INFERQ_MODEL_DIR", str(bus.data_dir / "models"))),
            model_base_url=env_http_url(env, "INFERQ_MODEL_BASE_URL"),
            results_cache=env_int(env, "INFERQ_RESULTS_CACHE", 200_000, minimum=1),
            results_cache_bytes=env_int(env, "INFERQ_RESULTS_CACHE_BYTES", 256 * 1024 * 1024,
                                        minimum=1024 * 1024),
            allow_private_urls=env_bool(env, "INFERQ_ALLOW_PRIVATE_URLS", False),
            model_repository=_opt_path(env_opt(env, "INFERQ_MODEL_REPOSITORY")),
            model_repository_account=env_str(env, "INFERQ_MODEL_REPOSITORY_ACCOUNT",
                                             "model-repository"),
            v2_auth=env_bool(env, "INFERQ_V2_AUTH", True),
            runner_heartbeat_s=env_float(env, "INFERQ_HEARTBEAT_S", 5.0, minimum=0.1),
            files_dir=Path(env_str(env, "INFERQ_FILES_DIR", str(bus.data_dir / "files"))),
            max_file_bytes=env_int(env, "INFERQ_MAX_FILE_BYTES", 64 * 1024 * 1024,
                                   minimum=1024),
            rate_limits=env.get("INFERQ_RATE_LIMITS", "run=100/60,get=1000/60,upload=50/60"),
        )
        if s.admin_token is not None and len(s.admin_token) < 16:
            raise SettingError("INFERQ_ADMIN_TOKEN must be at least 16 characters")
        if s.model_repository is not None and not s.model_repository.is_dir():
            raise SettingError(f"INFERQ_MODEL_REPOSITORY={str(s.model_repository)!r} is not "
                               "a directory")
        return s

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"
