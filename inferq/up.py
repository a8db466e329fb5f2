"""`inferq up`: ingest, runner and notifier in one process on one bus."""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import replace
from pathlib import Path

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from bus.base import Bus
from bus.factory import bus_for
from inferq.demo import curl_line, ensure_demo
from inferq.serve import bound_port, serve
from ingest.app import create_app
from ingest.context import IngestContext
from ingest.settings import IngestSettings
from notifier.service import Notifier
from notifier.settings import NotifierSettings
from runner.service import Runner
from runner.settings import RunnerSettings


def admin_token(data_dir: Path) -> str:
    """INFERQ_ADMIN_TOKEN, else one generated on first start and kept in the data dir."""
    path = data_dir / "admin-token"
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    return token


def build_up(
    ingest: IngestSettings, runner: RunnerSettings, notifier: NotifierSettings,
    *, bus: Bus | None = None, demo_dir: Path | None = None,
) -> tuple[Starlette, dict[str, str]]:
    """The all-in-one app: ingest with runner and notifier as companions on one bus.

    With ``demo_dir``, the demo model/key/task are ensured at start and their task id
    and key land in the returned dict.
    """
    metrics = CollectorRegistry()
    bus = bus or bus_for(ingest.bus, "inferq-up")
    demo: dict[str, str] = {}

    async def on_ready(ctx: IngestContext) -> None:
        if demo_dir is not None:
            demo["task"], demo["key"] = await ensure_demo(ctx, demo_dir)

    notifier_service = Notifier(notifier, bus, metrics)
    app = create_app(
        ingest, bus=bus, metrics=metrics, on_ready=on_ready,
        companions=[Runner(runner, bus, metrics), notifier_service],
        extra_routes=notifier_service.routes(),  # SSE and deliveries on the same port
    )
    return app, demo


def run_up(ingest: IngestSettings, runner: RunnerSettings, notifier: NotifierSettings) -> None:
    data_dir = ingest.bus.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    if ingest.admin_token is None:
        ingest = replace(ingest, admin_token=admin_token(data_dir))
    app, demo = build_up(ingest, runner, notifier, demo_dir=data_dir)

    async def announce(srv: uvicorn.Server) -> None:
        port = bound_port(srv)
        base = ingest.public_url or f"http://{ingest.host}:{port}"
        bus_name = ingest.bus.kafka_bootstrap and f"Kafka at {ingest.bus.kafka_bootstrap}"
        print(f"inferq is up at {base} ({bus_name or f'embedded bus in {data_dir}'}).")
        print("Try the demo task:")
        print(curl_line(base, demo["task"], demo["key"]))
        print(f"Admin token: {data_dir / 'admin-token'} (or INFERQ_ADMIN_TOKEN). Ctrl-C stops.")
        sys.stdout.flush()

    serve(app, ingest.host, ingest.port, when_started=announce)
