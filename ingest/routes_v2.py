"""The Open Inference Protocol v2 REST routes (KServe / Triton), over the submit core.

Health and server metadata are open (probes and discovery); model routes take the same
API keys as the submit API unless ``INFERQ_V2_AUTH=0``. Errors are the protocol's
``{"error": "..."}``.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route

from ingest.auth import authenticate
from ingest.body import api_key, read_body
from ingest.context import IngestContext
from ingest.errors import BadRequest, IngestError, Overloaded, PayloadTooLarge
from ingest.v2_catalog import resolve, task_for_request
from ingest.v2_codec import (
    decode_request,
    encode_response,
    inputs_to_tensors,
    split_body,
    v2_datatype,
    wanted_outputs,
)
from schemas.messages import Expired, Succeeded
from schemas.registry import ModelRecord, TensorSpec
from schemas.tensors import TensorError
from schemas.v2_api import (
    PLATFORM,
    ErrorBody,
    MetadataTensor,
    ModelMetadata,
    ServerMetadata,
    json_encoder,
)

Handler = Callable[[Request], Awaitable[Response]]

#: Protocol extensions served, as ``GET /v2`` lists them.
EXTENSIONS = ["binary_tensor_data"]
#: Responses smaller than this are not worth compressing.
_MIN_COMPRESS = 1024


def _server_version() -> str:
    try:
        return version("inferq")
    except PackageNotFoundError:
        return "0.0.0"


def v2_json(body: object, status: int = 200, headers: dict[str, str] | None = None
            ) -> Response:
    return Response(json_encoder.encode(body), status, headers, media_type="application/json")


def v2_error(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return v2_json(ErrorBody(error=message), status, headers)


def _errors_as_v2(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except IngestError as exc:
            headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(
                exc, Overloaded) else None
            return v2_error(exc.message, exc.status_code, headers)
    return wrapped


def _inflate(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo a gzip/deflate Content-Encoding, never past ``limit`` bytes."""
    if encoding is None or encoding.strip().lower() in ("", "identity"):
        return body
    enc = encoding.strip().lower()
    if enc not in ("gzip", "deflate"):
        raise BadRequest(f"Content-Encoding {encoding!r} is not supported (gzip, deflate)")
    d = zlib.decompressobj(wbits=31 if enc == "gzip" else 15)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"the {enc} body does not decompress: {exc}") from None
    if len(out) > limit:
        raise PayloadTooLarge(f"the decompressed body exceeds the limit of {limit} bytes")
    if not d.eof:
        raise BadRequest(f"the {enc} body is truncated")
    return out


def _compress(request: Request, body: bytes, headers: dict[str, str]) -> bytes:
    accepted = {a.split(";")[0].strip().lower()
                for a in request.headers.get("accept-encoding", "").split(",")}
    if len(body) < _MIN_COMPRESS:
        return body
    if "gzip" in accepted:
        headers["Content-Encoding"] = "gzip"
        return gzip.compress(body, compresslevel=1)
    if "deflate" in accepted:
        headers["Content-Encoding"] = "deflate"
        return zlib.compress(body, 1)
    return body


def _tensors(specs: tuple[TensorSpec, ...]) -> list[MetadataTensor]:
    return [MetadataTensor(name=s.name, datatype=v2_datatype(s.dtype), shape=list(s.shape))
            for s in specs]


def routes(ctx: IngestContext) -> list[BaseRoute]:
    settings = ctx.settings
    server = ServerMetadata(name="inferq", version=_server_version(), extensions=EXTENSIONS)

    def caller(request: Request) -> str | None:
        """The caller's account; None when v2 auth is off (every model visible)."""
        if not settings.v2_auth:
            return None
        return authenticate(ctx.registry, api_key(request))

    def model_of(request: Request) -> tuple[ModelRecord, list[ModelRecord], str | None]:
        account = caller(request)
        model, versions = resolve(ctx.registry, account, settings.model_repository_account,
                                  request.path_params["name"],
                                  request.path_params.get("version"))
        return model, versions, account

    async def not_ready_reason() -> str | None:
        if not await ctx.bus.healthy():
            return "the bus is not connected"
        if not ctx.registry.ready:
            return "the registry is still loading"
        if not ctx.runners.alive():
            return "no runner is alive"
        return None

    async def live(request: Request) -> Response:
        return Response(b"", 200)

    async def ready(request: Request) -> Response:
        reason = await not_ready_reason()
        # The protocol answers "false" with a 4xx.
        return Response(b"", 200) if reason is None else v2_error(f"not ready: {reason}", 400)

    async def server_metadata(request: Request) -> Response:
        return v2_json(server)

    async def model_metadata(request: Request) -> Response:
        model, versions, _ = model_of(request)
        return v2_json(ModelMetadata(
            name=model.name, versions=[m.version for m in versions], platform=PLATFORM,
            inputs=_tensors(model.inputs), outputs=_tensors(model.outputs)))

    async def model_ready(request: Request) -> Response:
        model_of(request)
        reason = await not_ready_reason()
        return Response(b"", 200) if reason is None else v2_error(f"not ready: {reason}", 400)

    async def infer(request: Request) -> Response:
        model, _, account = model_of(request)
        raw = await read_body(request, settings.max_body_bytes)
        raw = _inflate(raw, request.headers.get("content-encoding"), settings.max_body_bytes)
        header, binary = split_body(raw, request.headers.get("inference-header-content-length"))
        body = decode_request(header)
        tensors = inputs_to_tensors(body, binary, model)
        wanted = wanted_outputs(body, model)
        task = task_for_request(ctx.registry, account, model)
        req = ctx.core.request(account_id=task.account_id, task=task, model=model,
                               inputs=tensors, outputs=[w.name for w in wanted])
        started = time.monotonic()
        result = await ctx.core.run(req, settings.sync_timeout_s,
                                    request.headers.get("traceparent"))
        if result is None:
            return v2_error(f"inference did not finish within {time.monotonic() - started:.0f} s "
                            f"(request {req.subtask_id})", 504)
        if isinstance(result, Expired):
            return v2_error(result.error, 503)
        if not isinstance(result, Succeeded):
            return v2_error(result.error, 500)
        try:
            content, header_length = encode_response(model, body.id, result.outputs, wanted)
        except TensorError as exc:
            return v2_error(str(exc), 500)
        headers: dict[str, str] = {}
        if header_length is not None:
            headers["Inference-Header-Content-Length"] = str(header_length)
        if header_length is None:
            # Binary tensor data is left as it is: raw floats shrink by ~6 % at gzip's
            # fastest level, for ~10 us of the event loop per KiB (44 us for a
            # 1,024-float output), and a client asking for binary chose its size.
            content = _compress(request, content, headers)
        media = "application/json" if header_length is None else "application/octet-stream"
        return Response(content, 200, headers, media_type=media)

    own: list[BaseRoute] = [
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/models/{name}", _errors_as_v2(model_metadata), methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}", _errors_as_v2(model_metadata),
              methods=["GET"]),
        Route("/v2/models/{name}/ready", _errors_as_v2(model_ready), methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/ready", _errors_as_v2(model_ready),
              methods=["GET"]),
        Route("/v2/models/{name}/infer", _errors_as_v2(infer), methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", _errors_as_v2(infer),
              methods=["POST"]),
    ]

    async def fallback(request: Request) -> Response:
        """Unknown v2 paths and wrong methods, in the protocol's error shape."""
        for route in own:
            match, _ = route.matches(request.scope)
            if match == Match.PARTIAL:
                return v2_error(f"method {request.method} is not allowed on "
                                f"{request.url.path}", 405)
        return v2_error(f"no route {request.url.path}", 404)

    every_method = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return [*own, Route("/v2/{rest:path}", fallback, methods=every_method)]
