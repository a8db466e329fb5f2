"""Topic names (prefix + role) and how each topic is provisioned."""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    compact: bool
    retention_ms: int | None = None

    def configs(self) -> dict[str, str]:
        configs = {"cleanup.policy": "compact" if self.compact else "delete"}
        if self.retention_ms is not None:
            if self.compact:
                # Results never repeat a key, so compaction alone would keep them all.
                configs["cleanup.policy"] = "compact,delete"
            configs["retention.ms"] = str(self.retention_ms)
        return configs


@dataclass(frozen=True, slots=True)
class TopicNames:
    prefix: str = "inferq."

    @property
    def requests(self) -> str:
        return self.prefix + "requests"

    @property
    def events(self) -> str:
        return self.prefix + "events"

    @property
    def results(self) -> str:
        return self.prefix + "results"

    @property
    def control(self) -> str:
        return self.prefix + "control"

    @property
    def registry(self) -> str:
        return self.prefix + "registry"

    @property
    def runners(self) -> str:
        return self.prefix + "runners"

    @property
    def deadletter(self) -> str:
        return self.prefix + "deadletter"

    def specs(self, partitions: int = 6) -> list[TopicSpec]:
        """Every topic with DESIGN.md's cleanup policy; ``partitions`` for the busy ones."""
        return [
            TopicSpec(self.requests, partitions, compact=False, retention_ms=DAY_MS),
            TopicSpec(self.events, partitions, compact=False, retention_ms=DAY_MS),
            TopicSpec(self.results, partitions, compact=True, retention_ms=7 * DAY_MS),
            TopicSpec(self.control, 1, compact=False, retention_ms=DAY_MS),
            TopicSpec(self.registry, 1, compact=True),
            TopicSpec(self.runners, 1, compact=True),
            TopicSpec(self.deadletter, 1, compact=False, retention_ms=14 * DAY_MS),
        ]
