"""The submit API: ``POST /api/inference/tasks/{taskId}``, ``GET /api/inference/subtasks/{id}``."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest.auth import authenticate, model_for, task_for
from ingest.bindings import bindings_to_inputs
from ingest.body import api_key, read_body
from ingest.context import IngestContext
from ingest.errors import BadRequest
from ingest.responses import json_response
from schemas.messages import SubtaskResult, Succeeded
from schemas.submit_api import SubmitResponse, describe_decode_error, submit_body_decoder
from schemas.tensors import decode_tensor


def submit_response(subtask_id: str, result: SubtaskResult | None) -> SubmitResponse:
    if result is None:
        return SubmitResponse(id=subtask_id, state="pending")
    if isinstance(result, Succeeded):
        data: dict[str, Any] = {t.name: decode_tensor(t).tolist() for t in result.outputs}
        return SubmitResponse(id=subtask_id, state="success", data=data)
    return SubmitResponse(id=subtask_id, state="failed", error=result.error)


def routes(ctx: IngestContext) -> list[Route]:
    async def submit(request: Request) -> Response:
        account = authenticate(ctx.registry, api_key(request))
        task = task_for(ctx.registry, request.path_params["task_id"], account)
        if not task.fill_bindings_via_api:
            raise BadRequest(f"task {task.id} is not configured for API bindings")
        raw = await read_body(request, ctx.settings.max_body_bytes)
        try:
            body = submit_body_decoder.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise BadRequest(describe_decode_error(exc)) from None
        model = model_for(ctx.registry, task.model_id)
        inputs, url_inputs = bindings_to_inputs(body.bindings, model)
        req = ctx.core.request(
            account_id=account, task=task, model=model, inputs=inputs, url_inputs=url_inputs
        )
        result = await ctx.core.run(
            req, ctx.settings.sync_timeout_s, request.headers.get("traceparent")
        )
        return json_response(submit_response(req.subtask_id, result))

    async def get_subtask(request: Request) -> Response:
        account = authenticate(ctx.registry, api_key(request))
        subtask_id = request.path_params["subtask_id"]
        result = ctx.core.lookup(subtask_id, account)
        return json_response(submit_response(subtask_id, result))

    return [
        Route("/api/inference/tasks/{task_id}", submit, methods=["POST"]),
        Route("/api/inference/subtasks/{subtask_id}", get_subtask, methods=["GET"]),
    ]
