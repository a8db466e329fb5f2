"""Response bodies: JSON via msgspec, and errors in the dialect the caller asked for.

Errors follow the tasks-API conventions: without ``X-API-Version: 2`` the version-1
wrapper ``{"success": false, "status", "error": {"code", "message"}}``; with it, RFC 9457
``application/problem+json``. Both carry the same code and message.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ingest.errors import IngestError, Overloaded, RateLimited
from schemas.tasks_api import error_body, versioned_body

_json = msgspec.json.Encoder()


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_json.encode(body), status, headers, media_type="application/json")


def wants_v2(request: Request) -> bool:
    return request.headers.get("x-api-version", "").strip() == "2"


def versioned_response(request: Request, body: Any, status: int = 200,
                       headers: dict[str, str] | None = None) -> Response:
    """A tasks-API success: the bare resource with ``X-API-Version: 2``, else the
    version-1 wrapper ``{"success": true, "status", "data"}``."""
    return json_response(versioned_body(body, wants_v2(request), status), status, headers)


def error_response(request: Request, exc: IngestError) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, Overloaded | RateLimited):
        headers["Retry-After"] = str(exc.retry_after_s)
    body, media = error_body(exc.status_code, exc.code, exc.message, wants_v2(request))
    return Response(_json.encode(body), exc.status_code, headers, media_type=media)
