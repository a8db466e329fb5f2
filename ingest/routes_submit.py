"""The submit API: ``POST /api/inference/tasks/{taskId}``, ``GET /api/inference/subtasks/{id}``."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest.auth import authenticate, model_for, task_for
from ingest.bindings import bindings_to_inputs
from ingest.body import api_key, read_body
from ingest.context import IngestContext
from ingest.errors import BadRequest
from ingest.prefer import parse_prefer
from ingest.responses import json_response
from ingest.webhook_check import webhook_for
from schemas.submit_api import describe_decode_error, submit_body_decoder, submit_response


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
        prefer = parse_prefer(request.headers.getlist("prefer"))
        model = model_for(ctx.registry, task.model_id)
        inputs, url_inputs = bindings_to_inputs(body.bindings, model)
        req = ctx.core.request(
            account_id=account, task=task, model=model, inputs=inputs, url_inputs=url_inputs
        )
        webhook = webhook_for(ctx.registry, account, body.webhook, task)
        if webhook is not None:
            req = msgspec.structs.replace(req, webhook=webhook)
        # Prefer (RFC 7240): respond-async answers 202 at once (or after wait=N);
        # wait=N alone shortens the synchronous wait.
        timeout = ctx.settings.sync_timeout_s
        if prefer.wait_s is not None:
            timeout = min(timeout, prefer.wait_s)
        elif prefer.respond_async:
            timeout = 0.0
        result = await ctx.core.run(req, timeout, request.headers.get("traceparent"))
        applied = ["respond-async"] if prefer.respond_async else []
        if prefer.wait_s is not None:
            applied.append(f"wait={prefer.wait_s:g}")
        headers = {"Preference-Applied": ", ".join(applied)} if applied else {}
        if result is None and prefer.respond_async:
            headers["Location"] = f"/api/inference/subtasks/{req.subtask_id}"
            return json_response(submit_response(req.subtask_id, None), 202, headers)
        return json_response(submit_response(req.subtask_id, result), headers=headers)

    async def get_subtask(request: Request) -> Response:
        account = authenticate(ctx.registry, api_key(request))
        subtask_id = request.path_params["subtask_id"]
        result = ctx.core.lookup(subtask_id, account)
        return json_response(submit_response(subtask_id, result))

    return [
        Route("/api/inference/tasks/{task_id}", submit, methods=["POST"]),
        Route("/api/inference/subtasks/{subtask_id}", get_subtask, methods=["GET"]),
    ]
