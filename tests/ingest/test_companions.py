"""The services started beside ingest (`inferq up`'s runner and notifier) start together,
and one that fails to start leaves none half-started for the stop that follows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ingest.app import create_app
from ingest.settings import IngestSettings
from tests.harness import ADMIN_TOKEN, bus_settings


class Slow:
    """Takes ``start_s`` to start, then fails with ``error`` if one is given."""

    def __init__(self, log: list[str], name: str, start_s: float,
                 error: Exception | None = None) -> None:
        self.log, self.name, self.start_s, self.error = log, name, start_s, error

    async def start(self) -> None:
        self.log.append(f"{self.name} starting")
        await asyncio.sleep(self.start_s)
        if self.error is not None:
            raise self.error
        self.log.append(f"{self.name} started")

    async def stop(self) -> None:
        self.log.append(f"{self.name} stopped")


def _settings(kafka_bootstrap: str | None, tmp_path: Path) -> IngestSettings:
    return IngestSettings(bus=bus_settings(kafka_bootstrap, tmp_path / "bus"),
                          admin_token=ADMIN_TOKEN, model_dir=tmp_path / "models")


async def test_companions_start_together(kafka_bootstrap: str | None, tmp_path: Path) -> None:
    log: list[str] = []
    app = create_app(_settings(kafka_bootstrap, tmp_path),
                     companions=[Slow(log, "a", 0.3), Slow(log, "b", 0.3)])
    async with app.router.lifespan_context(app):
        # Both began before either finished (one after the other: a, a, b, b).
        assert log[:2] == ["a starting", "b starting"]
        assert sorted(log[2:]) == ["a started", "b started"]
    assert log[-2:] == ["b stopped", "a stopped"]


async def test_a_failed_start_raises_after_the_others_finished_starting(
        kafka_bootstrap: str | None, tmp_path: Path) -> None:
    log: list[str] = []
    app = create_app(_settings(kafka_bootstrap, tmp_path), companions=[
        Slow(log, "fails", 0.05, RuntimeError("preload: no model nope:3")),
        Slow(log, "slow", 0.5)])
    with pytest.raises(RuntimeError, match="nope:3"):
        async with app.router.lifespan_context(app):
            pytest.fail("the app must not come up")
    assert log.index("slow started") < log.index("slow stopped")
    assert set(log) == {"fails starting", "slow starting", "slow started", "slow stopped",
                        "fails stopped"}
