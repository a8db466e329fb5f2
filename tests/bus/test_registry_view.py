"""The registry view's key checks, including keys written a moment ago elsewhere."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bus.embedded import EmbeddedBus
from bus.registry_view import RegistryView
from schemas.keys import key_hash, new_key
from schemas.registry import ApiKeyRecord, encode_record, registry_key


async def test_a_key_written_elsewhere_is_usable_at_once(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path)
    await bus.start()
    view = RegistryView(bus, "registry")
    await view.start()
    try:
        key_id, key = new_key()
        record = ApiKeyRecord(key_id=key_id, account_id="acme", key_hash=key_hash(key))

        async def write_later() -> None:
            await asyncio.sleep(0.2)  # another process publishing the key
            await bus.publish("registry", registry_key(record).encode(), encode_record(record))

        writer = asyncio.create_task(write_later())
        assert view.account_for(key) is None
        assert await view.account_for_soon(key, wait_s=5) == "acme"
        await writer

        # A wrong secret for a known key id, or a malformed key, is refused at once.
        t0 = time.monotonic()
        assert await view.account_for_soon(key[:-1] + "0" if key[-1] != "0" else key[:-1] + "1",
                                           wait_s=5) is None
        assert await view.account_for_soon("pk-nope", wait_s=5) is None
        assert time.monotonic() - t0 < 0.5
        # An unknown key id waits at most wait_s.
        t0 = time.monotonic()
        assert await view.account_for_soon(new_key()[1], wait_s=0.2) is None
        assert 0.2 <= time.monotonic() - t0 < 1.0
    finally:
        await view.stop()
        await bus.stop()
