"""Standard Webhooks signatures: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

from schemas.webhooks import secret_bytes


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    msg = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), msg, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: Iterable[str], webhook_id: str, timestamp: int,
                     body: bytes) -> str:
    """Every valid secret's signature, space-separated (rotation sends several)."""
    return " ".join(sign(s, webhook_id, timestamp, body) for s in secrets)
