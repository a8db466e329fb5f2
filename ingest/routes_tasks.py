"""The tasks API: ``POST /run`` and ``/tasks/{id}`` (status, logs, timings, cancel).

A thin adapter over the submit core: a run is a submit of bindings built from
``input``, and a task id is the subtask id the submit API uses for the same request.
Success bodies are versioned (``versioned_response``); errors are the app's handler's.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest.auth import authenticate, model_for
from ingest.bindings import bindings_to_inputs
from ingest.body import api_key, read_body
from ingest.context import IngestContext
from ingest.errors import BadRequest, Unavailable
from ingest.responses import versioned_response
from ingest.task_view import log_lines, task_dto, task_state, timings_dto
from ingest.v2_catalog import resolve, task_for_request
from ingest.webhook_check import webhook_for
from schemas.files import file_id_of
from schemas.messages import MESSAGE_HEADERS, Cancel, UrlInput, encode
from schemas.registry import ModelRecord, TaskRecord
from schemas.submit_api import Binding, WebhookSpec, describe_decode_error
from schemas.tasks_api import (
    FINAL_STATUSES,
    CancelDTO,
    LogsDTO,
    RunBody,
    TaskStatusDTO,
    rfc3339,
    run_body_decoder,
)
from schemas.tensors import STRING

MAX_METADATA_BYTES = 4096
#: How long a cancel waits for the runner's ``cancelled`` result before answering.
CANCEL_WAIT_S = 5.0

_json = msgspec.json.Encoder()


def _app_target(ctx: IngestContext, app: str, account: str) -> tuple[TaskRecord, ModelRecord]:
    """``app`` as a task id of this account, else a model ``name[:version]`` it may use."""
    task = ctx.registry.tasks.get(app)
    if task is not None and task.account_id == account:
        if not task.fill_bindings_via_api:
            raise BadRequest(f"task {task.id} is not configured for API bindings")
        return task, model_for(ctx.registry, task.model_id)
    name, _, version = app.partition(":")
    model, _ = resolve(ctx.registry, account, ctx.settings.model_repository_account, name,
                       version or None)
    return task_for_request(ctx.registry, account, model), model


def _bindings(inputs: dict[str, Any], model: ModelRecord) -> list[Binding]:
    specs = {s.name: s for s in model.inputs}
    out: list[Binding] = []
    for name, value in inputs.items():
        spec = specs.get(name)
        if isinstance(value, dict):
            if set(value) != {"fileUrl"} or not isinstance(value["fileUrl"], str):
                raise BadRequest(f"input {name!r}: an object must be exactly "
                                 '{"fileUrl": "<url>"}')
            out.append(Binding(tensorName=name, payloadType="Binary",
                               fileUrl=value["fileUrl"]))
        elif isinstance(value, str) and spec is not None and spec.dtype == STRING:
            out.append(Binding(tensorName=name, payloadType="Text", payload=value))
        else:
            out.append(Binding(tensorName=name, payloadType="Json",
                               payload=_json.encode(value).decode()))
    return out


def check_file_inputs(ctx: IngestContext, account: str, url_inputs: tuple[UrlInput, ...]
                      ) -> None:
    """Uploaded files a request names must be the caller's (else 404, as if missing)."""
    for u in url_inputs:
        file_id = file_id_of(u.url)
        if file_id is not None:
            ctx.files.get(file_id, account)


def routes(ctx: IngestContext) -> list[Route]:
    def account_of(request: Request) -> str:
        return authenticate(ctx.registry, api_key(request))

    async def run(request: Request) -> Response:
        account = account_of(request)
        raw = await read_body(request, ctx.settings.max_body_bytes)
        try:
            body: RunBody = run_body_decoder.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise BadRequest(describe_decode_error(exc)) from None
        metadata = "" if body.metadata is None else _json.encode(body.metadata).decode()
        if len(metadata) > MAX_METADATA_BYTES:
            raise BadRequest(f"metadata is {len(metadata)} bytes as JSON; the limit is "
                             f"{MAX_METADATA_BYTES}")
        task, model = _app_target(ctx, body.app, account)
        inputs, url_inputs = bindings_to_inputs(_bindings(body.input, model), model)
        check_file_inputs(ctx, account, url_inputs)
        req = ctx.core.request(account_id=account, task=task, model=model, inputs=inputs,
                               url_inputs=url_inputs)
        spec = WebhookSpec(url=body.webhook) if isinstance(body.webhook, str) else body.webhook
        webhook = webhook_for(ctx.registry, account, spec, task)
        if webhook is not None:
            req = msgspec.structs.replace(req, webhook=webhook)
        timeout = ctx.settings.sync_timeout_s if body.wait else 0.0
        result = await ctx.core.run(req, timeout, request.headers.get("traceparent"), metadata)
        return versioned_response(request,
                                  task_dto(task_state(ctx, req.subtask_id, account, result)))

    async def get_task(request: Request) -> Response:
        st = task_state(ctx, request.path_params["id"], account_of(request))
        return versioned_response(request, task_dto(st))

    async def get_status(request: Request) -> Response:
        st = task_state(ctx, request.path_params["id"], account_of(request))
        return versioned_response(request, TaskStatusDTO(
            id=st.subtask_id, status=st.status, updated_at=rfc3339(st.updated_at_ms)))

    async def get_timings(request: Request) -> Response:
        st = task_state(ctx, request.path_params["id"], account_of(request))
        return versioned_response(request, timings_dto(st))

    async def get_logs(request: Request) -> Response:
        st = task_state(ctx, request.path_params["id"], account_of(request))
        return versioned_response(request, LogsDTO(id=st.subtask_id, logs=log_lines(st)))

    async def cancel(request: Request) -> Response:
        account = account_of(request)
        subtask_id = request.path_params["id"]
        st = task_state(ctx, subtask_id, account)
        if st.status in FINAL_STATUSES:
            return versioned_response(request, CancelDTO(id=subtask_id, status=st.status,
                                                         cancelled=False))
        now = int(time.time() * 1000)
        msg = Cancel(subtask_id=subtask_id, account_id=account, at_ms=now,
                     deadline_ms=now + int(ctx.settings.request_deadline_s * 1000))
        try:
            await ctx.bus.publish(ctx.topics.control, subtask_id.encode(), encode(msg),
                                  MESSAGE_HEADERS)
        except Exception as exc:  # BusError, or the broker refusing
            raise Unavailable(f"the cancel could not be sent: {exc}") from exc
        # The runner holding it answers `cancelled` in moments; a request no runner has
        # taken yet is answered when one does (each remembers the cancel until then).
        result = await ctx.results.watch(subtask_id, CANCEL_WAIT_S)
        st = task_state(ctx, subtask_id, account, result)
        return versioned_response(request, CancelDTO(id=subtask_id, status=st.status,
                                                     cancelled=True))

    return [
        Route("/run", run, methods=["POST"]),
        Route("/apps/run", run, methods=["POST"]),
        Route("/tasks/{id}", get_task, methods=["GET"]),
        Route("/tasks/{id}/status", get_status, methods=["GET"]),
        Route("/tasks/{id}/timings", get_timings, methods=["GET"]),
        Route("/tasks/{id}/logs", get_logs, methods=["GET"]),
        Route("/tasks/{id}/cancel", cancel, methods=["POST"]),
    ]
