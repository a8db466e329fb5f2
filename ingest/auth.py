"""Authentication and ownership checks over the registry view, as HTTP errors."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from bus.registry_view import RegistryView
from ingest.errors import NotFound, Unauthorized
from schemas.keys import key_id_of, matches
from schemas.registry import ModelRecord, TaskRecord


def authenticate(registry: RegistryView, key: str | None) -> str:
    """The account id of a valid, unrevoked key; else Unauthorized."""
    if not key:
        raise Unauthorized("missing API key: send it in the X-Api-Key header")
    account = registry.account_for(key)
    if account is None:
        record = registry.keys.get(key_id_of(key) or "")
        if record is not None and record.revoked_at_ms is not None and matches(
            key, record.key_hash
        ):
            raise Unauthorized("this API key has been revoked")
        raise Unauthorized("invalid API key")
    return account


def task_for(registry: RegistryView, task_id: str, account_id: str) -> TaskRecord:
    task = registry.tasks.get(task_id)
    # Another account's task is answered exactly like a missing one.
    if task is None or task.account_id != account_id:
        raise NotFound(f"task {task_id} not found")
    return task


def model_for(registry: RegistryView, model_id: str) -> ModelRecord:
    model = registry.models.get(model_id)
    if model is None:
        raise NotFound(f"model {model_id} not found")
    return model


class AwaitNewKeys:
    """ASGI middleware: a well-formed key this replica has not seen yet gets up to 1 s for
    its registry record to arrive before the request is handled.

    A key created through another ingest replica is on the registry topic, but this
    replica's view may be a fetch behind; without the wait, the first call right after
    ``keys create`` could be a spurious 401. Known keys (the hot path) cost one dict
    lookup; a forged key id waits its second and is then refused as usual.
    """

    def __init__(self, app: ASGIApp, registry: RegistryView, wait_s: float = 1.0) -> None:
        self.app = app
        self.registry = registry
        self.wait_s = wait_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            key = _raw_key(scope["headers"])
            key_id = key_id_of(key) if key else None
            if key_id is not None and key_id not in self.registry.keys:
                await self.registry.account_for_soon(key, self.wait_s)
        await self.app(scope, receive, send)


def _raw_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    bearer = None
    for name, value in headers:
        if name == b"x-api-key":
            return value.decode("latin-1").strip()
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            bearer = value[7:].decode("latin-1").strip()
    return bearer
