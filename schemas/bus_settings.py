"""The bus settings every service shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from schemas.env import SettingError, env_int, env_opt, env_str

#: Longest background fetch wait: a parked fetch must end well within the client's
#: 30 s request timeout.
MAX_BACKGROUND_FETCH_WAIT_MS = 10_000
#: Longest producer linger: every publish on a request's path waits it.
MAX_KAFKA_LINGER_MS = 1000
#: Longest deferral of the embedded bus's off-path readers: SSE and webhooks wait it.
MAX_EMBEDDED_DEFER_MS = 1000


@dataclass(frozen=True, slots=True)
class BusSettings:
    #: ``INFERQ_KAFKA_BOOTSTRAP``: Kafka bootstrap servers; unset means the embedded bus.
    kafka_bootstrap: str | None = None
    #: ``INFERQ_TOPIC_PREFIX``: prefix of every topic name.
    topic_prefix: str = "inferq."
    #: ``INFERQ_KAFKA_FETCH_MAX_WAIT_MS``: how long a fetch parks on the broker. Apache
    #: Kafka wakes parked fetches on new data, so any value works there; the Tansu test
    #: broker only re-checks at W/2, 3W/4, ..., so each hop costs up to W/2.
    fetch_max_wait_ms: int = 5
    #: ``INFERQ_KAFKA_BACKGROUND_FETCH_WAIT_MS``: the same for views off the request path
    #: (ingest's registry, runner heartbeats and control, replica beats); never shorter
    #: than ``fetch_max_wait_ms``. An idle consumer fetches once per wait, so short waits
    #: there only burn broker and process CPU; on Tansu those views see a record up to
    #: about half of it later (a registry write waits for its own view to apply it).
    background_fetch_wait_ms: int = 100
    #: ``INFERQ_KAFKA_LINGER_MS``: how long the producer holds a record to batch it with
    #: the next ones (0 to 1000). On Tansu at 64 clients (tiny model) 2 ms gave 1,230-1,240
    #: req/s against 1,002-1,166 at 0 (fewer, fuller produce requests: broker CPU 76-78 %
    #: of a core against 82-83 %), but at 1 client p50 rose from about 8 ms to 12-13 ms,
    #: as each publish on a request's path waits the linger. So 0 unless throughput-bound.
    kafka_linger_ms: int = 0
    #: ``INFERQ_MAX_MESSAGE_BYTES``: the largest record produced or fetched.
    max_message_bytes: int = 16 * 1024 * 1024
    #: ``INFERQ_PARTITIONS``: partitions of requests, events and results when created.
    partitions: int = 6
    #: ``INFERQ_KAFKA_SESSION_TIMEOUT_MS``: how long a silent group member (a killed
    #: runner) keeps its partitions before the group hands them to the others.
    session_timeout_ms: int = 10_000
    #: ``INFERQ_DATA_DIR``: where the embedded bus persists its topics.
    data_dir: Path = Path(".inferq")
    #: ``INFERQ_EMBEDDED_MAX_RECORDS``: records the embedded bus keeps of each topic (in
    #: memory and on disk; compacted topics keep the newest per key first). A request
    #: makes five (request, three events, result), about 2.7 KiB of memory in all at
    #: small tensors; what is past it is gone, as past a Kafka topic's retention.
    embedded_max_records: int = 200_000
    #: ``INFERQ_EMBEDDED_MAX_BYTES``: bytes of keys, values and headers the embedded bus
    #: keeps of each topic (in memory; on disk besides framing and what was appended
    #: since the last rewrite, at most as much again or 64 MiB); the oldest records go
    #: first, but never a topic's newest. With large tensors this, not the record
    #: count, bounds memory: 200,000 results of 1 MiB each would be 200 GiB.
    embedded_max_bytes: int = 256 * 1024 * 1024
    #: ``INFERQ_EMBEDDED_DEFER_MS``: how much later than the append the embedded bus
    #: wakes the readers nobody's answer waits on (the SSE book, the webhook deliverer,
    #: ingest's lifecycle lines), all with one timer, so they run after the request path
    #: and in batches; 0 wakes them at once. SSE events and webhooks leave up to this
    #: much later. Kafka ignores it (its fetches wait up to the fetch wait anyway).
    embedded_defer_ms: int = 2

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BusSettings:
        return cls(
            kafka_bootstrap=env_opt(env, "INFERQ_KAFKA_BOOTSTRAP"),
            topic_prefix=env_str(env, "INFERQ_TOPIC_PREFIX", "inferq."),
            fetch_max_wait_ms=env_int(env, "INFERQ_KAFKA_FETCH_MAX_WAIT_MS", 5, minimum=1),
            background_fetch_wait_ms=_background_wait(env),
            kafka_linger_ms=_at_most(env_int(env, "INFERQ_KAFKA_LINGER_MS", 0, minimum=0),
                                     "INFERQ_KAFKA_LINGER_MS", MAX_KAFKA_LINGER_MS),
            max_message_bytes=env_int(
                env, "INFERQ_MAX_MESSAGE_BYTES", 16 * 1024 * 1024, minimum=1024
            ),
            partitions=env_int(env, "INFERQ_PARTITIONS", 6, minimum=1),
            session_timeout_ms=env_int(env, "INFERQ_KAFKA_SESSION_TIMEOUT_MS", 10_000,
                                       minimum=1000),
            data_dir=Path(env_str(env, "INFERQ_DATA_DIR", ".inferq")),
            embedded_max_records=env_int(env, "INFERQ_EMBEDDED_MAX_RECORDS", 200_000,
                                         minimum=1000),
            embedded_max_bytes=env_int(env, "INFERQ_EMBEDDED_MAX_BYTES", 256 * 1024 * 1024,
                                       minimum=1024 * 1024),
            embedded_defer_ms=_at_most(
                env_int(env, "INFERQ_EMBEDDED_DEFER_MS", 2, minimum=0),
                "INFERQ_EMBEDDED_DEFER_MS", MAX_EMBEDDED_DEFER_MS),
        )


def _background_wait(env: Mapping[str, str]) -> int:
    name = "INFERQ_KAFKA_BACKGROUND_FETCH_WAIT_MS"
    return _at_most(env_int(env, name, 100, minimum=1), name, MAX_BACKGROUND_FETCH_WAIT_MS)


def _at_most(value: int, name: str, maximum: int) -> int:
    if value > maximum:
        raise SettingError(f"{name}={value} must be at most {maximum}")
    return value
