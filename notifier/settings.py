from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.bus_settings import BusSettings
from schemas.env import env_int, env_str


@dataclass(frozen=True, slots=True)
class NotifierSettings:
    bus: BusSettings = field(default_factory=BusSettings)
    #: ``INFERQ_NOTIFIER_HOST`` / ``INFERQ_NOTIFIER_PORT``: health, metrics, streams.
    http_host: str = "127.0.0.1"
    http_port: int = 8002

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotifierSettings:
        env = os.environ if env is None else env
        return cls(
            bus=BusSettings.from_env(env),
            http_host=env_str(env, "INFERQ_NOTIFIER_HOST", "127.0.0.1"),
            http_port=env_int(env, "INFERQ_NOTIFIER_PORT", 8002),
        )
