"""Choose the bus from settings: Kafka when a bootstrap address is given."""

from __future__ import annotations

from pathlib import Path

from bus.base import Bus
from bus.embedded import EmbeddedBus
from bus.kafka import KafkaBus, KafkaOptions
from schemas.bus_settings import BusSettings


def make_bus(
    kafka_bootstrap: str | None,
    data_dir: Path | None,
    *,
    fetch_max_wait_ms: int = 5,
    background_fetch_wait_ms: int = 100,
    linger_ms: int = 0,
    max_message_bytes: int = 16 * 1024 * 1024,
    client_id: str = "inferq",
    session_timeout_ms: int = 10_000,
    embedded_max_records: int = 200_000,
    embedded_max_bytes: int = 256 * 1024 * 1024,
    embedded_defer_ms: int = 2,
) -> Bus:
    if kafka_bootstrap:
        return KafkaBus(
            KafkaOptions(
                bootstrap=kafka_bootstrap,
                fetch_max_wait_ms=fetch_max_wait_ms,
                background_fetch_wait_ms=background_fetch_wait_ms,
                linger_ms=linger_ms,
                max_message_bytes=max_message_bytes,
                client_id=client_id,
                session_timeout_ms=session_timeout_ms,
                heartbeat_interval_ms=max(100, session_timeout_ms // 5),
            )
        )
    return EmbeddedBus(data_dir, max_records=embedded_max_records,
                       max_bytes=embedded_max_bytes, defer_s=embedded_defer_ms / 1000)


def bus_for(settings: BusSettings, client_id: str) -> Bus:
    """The bus that ``settings`` describe."""
    return make_bus(
        settings.kafka_bootstrap, settings.data_dir,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        background_fetch_wait_ms=settings.background_fetch_wait_ms,
        linger_ms=settings.kafka_linger_ms,
        max_message_bytes=settings.max_message_bytes, client_id=client_id,
        session_timeout_ms=settings.session_timeout_ms,
        embedded_max_records=settings.embedded_max_records,
        embedded_max_bytes=settings.embedded_max_bytes,
        embedded_defer_ms=settings.embedded_defer_ms,
    )
