"""The subtask state machine and how each API dialect names its states."""

from __future__ import annotations

from typing import Literal

from schemas.messages import Cancelled, Expired, Failed, SubtaskResult, Succeeded

FinalState = Literal["succeeded", "failed", "cancelled", "expired"]


def final_state(result: SubtaskResult) -> FinalState:
    if isinstance(result, Succeeded):
        return "succeeded"
    if isinstance(result, Cancelled):
        return "cancelled"
    if isinstance(result, Expired):
        return "expired"
    return "failed"


def error_message(result: Failed | Cancelled | Expired) -> str:
    return result.error
