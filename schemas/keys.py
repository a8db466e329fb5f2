"""API keys in the documented ``pk-xxxxxxxx-<32 hex>`` shape.

The first part is a public key id (the registry key); the whole key is only ever kept
as its SHA-256. Keys carry 128 random bits, so a plain hash is enough: there is nothing
to brute-force that a slow hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

_KEY_RE = re.compile(r"^pk-([0-9a-f]{8})-([0-9a-f]{32})$")


def new_key() -> tuple[str, str]:
    """A fresh ``(key_id, key)``."""
    key_id = secrets.token_hex(4)
    return key_id, f"pk-{key_id}-{secrets.token_hex(16)}"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The key id of a well-formed key, else None."""
    m = _KEY_RE.match(key)
    return m.group(1) if m else None


def matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(key_hash(key), stored_hash)
