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

_json = msgspec.json.Encoder()
ERROR_TYPE_BASE = "https://inferq.dev/errors/"

_TITLES = {
    "unauthorized": "Unauthorized",
    "forbidden": "Forbidden",
    "not_found": "Not Found",
    "invalid_request": "Invalid Request",
    "rate_limited": "Too Many Requests",
    "internal_error": "Internal Server Error",
    "overloaded": "Service Overloaded",
    "unavailable": "Service Unavailable",
}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_json.encode(body), status, headers, media_type="application/json")


def wants_v2(request: Request) -> bool:
    return request.headers.get("x-api-version", "").strip() == "2"


def versioned_response(request: Request, body: Any, status: int = 200,
                       headers: dict[str, str] | None = None) -> Response:
    """A tasks-API success: the bare resource with ``X-API-Version: 2``, else the
    version-1 wrapper ``{"success": true, "status", "data"}``."""
    if wants_v2(request):
        return json_response(body, status, headers)
    return json_response({"success": True, "status": status, "data": body}, status, headers)


def error_response(request: Request, exc: IngestError) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, Overloaded | RateLimited):
        headers["Retry-After"] = str(exc.retry_after_s)
    if wants_v2(request):
        body = {
            "type": ERROR_TYPE_BASE + exc.code,
            "title": _TITLES.get(exc.code, "Error"),
            "status": exc.status_code,
            "detail": exc.message,
        }
        return Response(
            _json.encode(body), exc.status_code, headers, media_type="application/problem+json"
        )
    body = {
        "success": False,
        "status": exc.status_code,
        "error": {"code": exc.code, "message": exc.message},
    }
    return json_response(body, exc.status_code, headers)
