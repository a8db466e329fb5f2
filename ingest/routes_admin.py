"""Admin API: keys, models and tasks, behind the admin bearer token."""

from __future__ import annotations

import hmac
import re
import time
import uuid
from typing import TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest.auth import model_for
from ingest.body import read_body
from ingest.context import IngestContext
from ingest.errors import BadRequest, Forbidden, NotFound, Unauthorized
from ingest.responses import json_response
from ingest.webhook_check import check_webhook_url
from schemas.admin_api import (
    BatchingPatch,
    CreateKey,
    CreateTask,
    KeyView,
    RotateKey,
    RotateWebhookSecret,
    TaskView,
)
from schemas.keys import key_hash, new_key
from schemas.registry import (
    ApiKeyRecord,
    ModelRecord,
    TaskRecord,
    WebhookSecretsRecord,
    batch_size_problem,
    queue_delay_problem,
)
from schemas.webhooks import WebhookSecret, new_secret

T = TypeVar("T")
R = TypeVar("R", ModelRecord, TaskRecord)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _decode(raw: bytes, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BadRequest(f"invalid request body: {exc}") from None


def check_batching(size: int | None, delay_ms: float | None) -> None:
    """BadRequest naming each batching field out of its range (the wire names)."""
    problems = [p for p in (batch_size_problem("maxBatchSize", size),
                            queue_delay_problem("maxQueueDelayMs", delay_ms)) if p]
    if problems:
        raise BadRequest("; ".join(problems))


def patch_batching(record: R, patch: BatchingPatch) -> R:
    """``record`` with the patch's batching fields applied (left out: unchanged)."""
    size = record.max_batch_size if patch.maxBatchSize is msgspec.UNSET else patch.maxBatchSize
    delay = (record.max_queue_delay_ms if patch.maxQueueDelayMs is msgspec.UNSET
             else patch.maxQueueDelayMs)
    check_batching(size, delay)
    return msgspec.structs.replace(record, max_batch_size=size, max_queue_delay_ms=delay)


def key_view(r: ApiKeyRecord) -> KeyView:
    return KeyView(keyId=r.key_id, account=r.account_id, name=r.name,
                   createdAtMs=r.created_at_ms, revokedAtMs=r.revoked_at_ms)


def model_view(m: ModelRecord) -> dict[str, object]:
    view: dict[str, object] = msgspec.to_builtins(m)
    return view | {"id": m.id}


def routes(ctx: IngestContext) -> list[Route]:
    def check_admin(request: Request) -> None:
        token = ctx.settings.admin_token
        if token is None:
            raise Forbidden("the admin API is disabled: set INFERQ_ADMIN_TOKEN")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
            raise Unauthorized("missing or invalid admin token")

    def task_view(t: TaskRecord) -> TaskView:
        return TaskView(id=t.id, account=t.account_id, name=t.name, model=t.model_id,
                        fillBindingsViaApi=t.fill_bindings_via_api,
                        submitUrl=f"{ctx.settings.base_url}/api/inference/tasks/{t.id}",
                        maxBatchSize=t.max_batch_size, maxQueueDelayMs=t.max_queue_delay_ms)

    async def create_key(request: Request) -> Response:
        check_admin(request)
        body = _decode(await read_body(request, 64 * 1024), CreateKey)
        account = body.account or f"acct-{uuid.uuid4().hex[:12]}"
        if not _NAME_RE.match(account):
            raise BadRequest("account must be 1-128 letters, digits, '_', '.', '-'")
        key_id, key = new_key()
        record = ApiKeyRecord(key_id=key_id, account_id=account, key_hash=key_hash(key),
                              name=body.name, created_at_ms=int(time.time() * 1000))
        await ctx.registry.put(record)
        return json_response(msgspec.to_builtins(key_view(record)) | {"key": key}, 201)

    async def list_keys(request: Request) -> Response:
        check_admin(request)
        return json_response([key_view(k) for k in ctx.registry.keys.values()])

    def existing_key(key_id: str) -> ApiKeyRecord:
        record = ctx.registry.keys.get(key_id)
        if record is None:
            raise NotFound(f"key {key_id} not found")
        return record

    async def revoke_key(request: Request) -> Response:
        check_admin(request)
        record = existing_key(request.path_params["key_id"])
        revoked = msgspec.structs.replace(record, revoked_at_ms=int(time.time() * 1000))
        await ctx.registry.put(revoked)
        return json_response(key_view(revoked))

    async def rotate_key(request: Request) -> Response:
        check_admin(request)
        old = existing_key(request.path_params["key_id"])
        body = _decode(await read_body(request, 64 * 1024), RotateKey)
        now = int(time.time() * 1000)
        key_id, key = new_key()
        new = ApiKeyRecord(key_id=key_id, account_id=old.account_id, key_hash=key_hash(key),
                           name=old.name, created_at_ms=now)
        await ctx.registry.put(new)
        await ctx.registry.put(msgspec.structs.replace(
            old, revoked_at_ms=now + int(body.graceSeconds * 1000)))
        return json_response(msgspec.to_builtins(key_view(new)) | {"key": key}, 201)

    async def upload_model(request: Request) -> Response:
        check_admin(request)
        name = request.query_params.get("name", "")
        version = request.query_params.get("version", "1")
        if not _NAME_RE.match(name) or not _NAME_RE.match(version):
            raise BadRequest("query parameters name and version must be 1-128 letters, "
                             "digits, '_', '.', '-'")
        data = await read_body(request, ctx.settings.max_model_bytes)
        record = ctx.models.save(name, version, data)
        existing = ctx.registry.models.get(record.id)
        if existing is not None:
            if existing.sha256 != record.sha256:
                raise BadRequest(f"model {record.id} already exists with other content; "
                                 "upload it under a new version")
            # The same file again: its batching settings stay.
            record = msgspec.structs.replace(record, max_batch_size=existing.max_batch_size,
                                             max_queue_delay_ms=existing.max_queue_delay_ms)
        await ctx.registry.put(record)
        return json_response(model_view(record), 201)

    async def update_model(request: Request) -> Response:
        """Set or clear a model version's batching (a JSON merge patch)."""
        check_admin(request)
        model_id = request.path_params["model_id"]
        model = model_for(ctx.registry, model_id if ":" in model_id else f"{model_id}:1")
        body = _decode(await read_body(request, 64 * 1024), BatchingPatch)
        model = patch_batching(model, body)
        await ctx.registry.put(model)
        return json_response(model_view(model))

    async def list_models(request: Request) -> Response:
        check_admin(request)
        return json_response([model_view(m) for m in ctx.registry.models.values()])

    async def create_task(request: Request) -> Response:
        check_admin(request)
        body = _decode(await read_body(request, 64 * 1024), CreateTask)
        model_id = body.model if ":" in body.model else f"{body.model}:1"
        model = model_for(ctx.registry, model_id)
        if body.webhook is not None:
            check_webhook_url(body.webhook.url)
        check_batching(body.maxBatchSize, body.maxQueueDelayMs)
        task = TaskRecord(id=str(uuid.uuid4()), account_id=body.account,
                          name=body.name or model.name, model_id=model.id,
                          fill_bindings_via_api=body.fillBindingsViaApi,
                          created_at_ms=int(time.time() * 1000),
                          webhook=body.webhook.target() if body.webhook else None,
                          max_batch_size=body.maxBatchSize,
                          max_queue_delay_ms=body.maxQueueDelayMs)
        await ctx.registry.put(task)
        return json_response(task_view(task), 201)

    async def update_task(request: Request) -> Response:
        """Set or clear a task's batching (a JSON merge patch)."""
        check_admin(request)
        task_id = request.path_params["task_id"]
        task = ctx.registry.tasks.get(task_id)
        if task is None:
            raise NotFound(f"task {task_id} not found")
        body = _decode(await read_body(request, 64 * 1024), BatchingPatch)
        task = patch_batching(task, body)
        await ctx.registry.put(task)
        return json_response(task_view(task))

    async def list_tasks(request: Request) -> Response:
        check_admin(request)
        account = request.query_params.get("account")
        tasks = [t for t in ctx.registry.tasks.values() if account in (None, t.account_id)]
        return json_response([task_view(t) for t in tasks])

    async def rotate_webhook_secret(request: Request) -> Response:
        """A new signing secret; the previous ones keep signing for ``graceSeconds``."""
        check_admin(request)
        account = request.path_params["account"]
        if not _NAME_RE.match(account):
            raise BadRequest("account must be 1-128 letters, digits, '_', '.', '-'")
        body = _decode(await read_body(request, 64 * 1024), RotateWebhookSecret)
        if not 0 <= body.graceSeconds <= 30 * 86400:
            raise BadRequest("graceSeconds must be between 0 and 2592000 (30 days)")
        now = int(time.time() * 1000)
        until = now + int(body.graceSeconds * 1000)
        old = ctx.registry.webhook_secrets.get(account)
        kept = tuple(
            msgspec.structs.replace(
                s, expires_at_ms=until if s.expires_at_ms is None else min(s.expires_at_ms, until))
            for s in (old.secrets if old else ()) if s.valid_at(now) and until > now)
        fresh = WebhookSecret(secret=new_secret(), created_at_ms=now)
        await ctx.registry.put(WebhookSecretsRecord(account_id=account,
                                                    secrets=(fresh, *kept[:4])))
        return json_response({"account": account, "secret": fresh.secret, "createdAtMs": now,
                              "previousValidUntilMs": until if kept else None}, 201)

    return [
        Route("/admin/accounts/{account}/webhook-secret", rotate_webhook_secret,
              methods=["POST"]),
        Route("/admin/keys", create_key, methods=["POST"]),
        Route("/admin/keys", list_keys, methods=["GET"]),
        Route("/admin/keys/{key_id}", revoke_key, methods=["DELETE"]),
        Route("/admin/keys/{key_id}/rotate", rotate_key, methods=["POST"]),
        Route("/admin/models", upload_model, methods=["POST"]),
        Route("/admin/models", list_models, methods=["GET"]),
        Route("/admin/models/{model_id}", update_model, methods=["PATCH"]),
        Route("/admin/tasks", create_task, methods=["POST"]),
        Route("/admin/tasks", list_tasks, methods=["GET"]),
        Route("/admin/tasks/{task_id}", update_task, methods=["PATCH"]),
    ]
