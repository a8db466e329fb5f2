"""A key written through another replica a moment ago is awaited, not refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.types import Receive, Scope, Send

from bus.embedded import EmbeddedBus
from bus.registry_view import RegistryView
from ingest.auth import AwaitNewKeys
from schemas.keys import key_hash, new_key
from schemas.registry import ApiKeyRecord, encode_record, registry_key


async def test_unknown_key_waits_for_its_record(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path)
    await bus.start()
    view = RegistryView(bus, "registry")
    await view.start()
    seen: list[str | None] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        key = dict(scope["headers"]).get(b"x-api-key", b"").decode()
        seen.append(view.account_for(key))

    app = AwaitNewKeys(inner, view, wait_s=5)
    try:
        key_id, key = new_key()
        record = ApiKeyRecord(key_id=key_id, account_id="acme", key_hash=key_hash(key))

        async def publish_later() -> None:
            await asyncio.sleep(0.2)
            await bus.publish("registry", registry_key(record).encode(), encode_record(record))

        later = asyncio.create_task(publish_later())
        scope = {"type": "http", "headers": [(b"x-api-key", key.encode())]}
        await app(scope, None, None)  # type: ignore[arg-type]
        await later
        assert seen == ["acme"]  # the handler ran after the record arrived

        # Bearer keys too; non-key credentials (the admin token) pass straight through.
        await app({"type": "http", "headers": [(b"authorization", f"Bearer {key}".encode())]},
                  None, None)  # type: ignore[arg-type]
        await app({"type": "http", "headers": [(b"authorization", b"Bearer admin-token")]},
                  None, None)  # type: ignore[arg-type]
        assert seen == ["acme", None, None]
    finally:
        await view.stop()
        await bus.stop()
