"""Choose the bus from settings: Kafka when a bootstrap address is given."""

from __future__ import annotations

from pathlib import Path

from bus.base import Bus
from bus.embedded import EmbeddedBus
from bus.kafka import KafkaBus, KafkaOptions


def make_bus(
    kafka_bootstrap: str | None,
    data_dir: Path | None,
    *,
    fetch_max_wait_ms: int = 5,
    max_message_bytes: int = 16 * 1024 * 1024,
    client_id: str = "inferq",
) -> Bus:
    if kafka_bootstrap:
        return KafkaBus(
            KafkaOptions(
                bootstrap=kafka_bootstrap,
                fetch_max_wait_ms=fetch_max_wait_ms,
                max_message_bytes=max_message_bytes,
                client_id=client_id,
            )
        )
    return EmbeddedBus(data_dir)
