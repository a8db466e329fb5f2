"""Webhooks: where a subtask's final event is delivered, and the signing secrets.

A target names a URL and the final states it wants. Secrets are ``whsec_`` + base64 of
24 random bytes (the Standard Webhooks format). Unlike API keys they cannot be kept as
hashes: the notifier needs the secret itself to sign every delivery, so they live in
the registry topic in clear, readable by anyone who can read that topic (protect it
with Kafka ACLs). Rotation keeps the previous secret valid for a grace period, and
every delivery is signed with every valid secret meanwhile.
"""

from __future__ import annotations

import base64
import secrets
from typing import Literal

import msgspec

FinalEvent = Literal["succeeded", "failed", "cancelled", "expired"]
FINAL_EVENTS: tuple[FinalEvent, ...] = ("succeeded", "failed", "cancelled", "expired")


class WebhookTarget(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A URL and the final states delivered to it (empty: every final state)."""

    url: str
    events: tuple[FinalEvent, ...] = ()

    def wants(self, state: str) -> bool:
        return not self.events or state in self.events


class WebhookSecret(msgspec.Struct, frozen=True, kw_only=True):
    secret: str
    created_at_ms: int = 0
    #: After this time the secret no longer signs (set when it is rotated out).
    expires_at_ms: int | None = None

    def valid_at(self, now_ms: int) -> bool:
        return self.expires_at_ms is None or now_ms < self.expires_at_ms


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def secret_bytes(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret."""
    return base64.b64decode(secret.removeprefix("whsec_"))
