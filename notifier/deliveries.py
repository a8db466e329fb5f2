"""Webhook delivery attempts per subtask, for ``GET /subtasks/{id}/deliveries``.

Kept in memory by the notifier that made them (bounded: the newest ``capacity``
subtasks, ``_PER_SUBTASK`` attempts each); a restarted notifier lists the attempts it
made since it started.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

_PER_SUBTASK = 50


@dataclass(frozen=True, slots=True)
class Attempt:
    at_ms: int
    attempt: int
    url: str
    webhook_id: str
    status: int | None
    error: str | None
    outcome: str  # delivered | retry | failed | gone | refused | deadlettered | skipped


@dataclass
class SubtaskAttempts:
    account_id: str
    attempts: list[Attempt] = field(default_factory=list)

    def view(self) -> list[dict[str, Any]]:
        return [{"atMs": a.at_ms, "attempt": a.attempt, "url": a.url, "webhookId": a.webhook_id,
                 "status": a.status, "error": a.error, "outcome": a.outcome}
                for a in self.attempts]


class DeliveryLog:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._by_subtask: OrderedDict[str, SubtaskAttempts] = OrderedDict()

    def record(self, subtask_id: str, account_id: str, attempt: Attempt) -> None:
        entry = self._by_subtask.get(subtask_id)
        if entry is None:
            entry = self._by_subtask[subtask_id] = SubtaskAttempts(account_id)
            if len(self._by_subtask) > self._capacity:
                self._by_subtask.popitem(last=False)
        if len(entry.attempts) < _PER_SUBTASK:
            entry.attempts.append(attempt)

    def get(self, subtask_id: str) -> SubtaskAttempts | None:
        return self._by_subtask.get(subtask_id)
