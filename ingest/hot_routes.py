"""The hot routes (submit, v2 infer, tasks-API run) served without Starlette's router.

For every request Starlette's router tries each route's regex in turn, then wraps the
endpoint in its exception layer and request/response adapters. On a small model that
machinery cost more CPU than the endpoint's own work (py-spy, tiny model, 64 clients).
``HotRoutes`` is the innermost middleware, so metrics, the new-key wait and rate limits
still apply as to any route. It recognises a POST to a hot route by comparing path
segments, records the matched route in the scope as the router would (metrics label by
its template), and calls the very same endpoint; an ``IngestError`` is answered as the
app's handler answers it. Everything else, and any path that is not an exact match,
goes on to Starlette unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ingest.errors import IngestError
from ingest.responses import error_response

#: (number of segments, literal segments by position, parameter names by position, route)
_Pattern = tuple[int, tuple[tuple[int, str], ...], tuple[tuple[int, str], ...], Route]


def _pattern(route: Route) -> _Pattern:
    literals: list[tuple[int, str]] = []
    params: list[tuple[int, str]] = []
    parts = route.path.split("/")
    for i, part in enumerate(parts):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if ":" in name:
                raise ValueError(f"hot route {route.path}: only plain {{name}} parameters")
            params.append((i, name))
        else:
            literals.append((i, part))
    return len(parts), tuple(literals), tuple(params), route


class HotRoutes:
    def __init__(self, app: ASGIApp, routes: Sequence[Route]) -> None:
        self.app = app
        for r in routes:
            if r.methods is None or "POST" not in r.methods:
                raise ValueError(f"hot route {r.path} does not take POST")
        self._patterns = [_pattern(r) for r in routes]

    def match(self, path: str) -> tuple[Route, dict[str, str]] | None:
        parts = path.split("/")
        for size, literals, params, route in self._patterns:
            if len(parts) != size or any(parts[i] != lit for i, lit in literals):
                continue
            values = {name: parts[i] for i, name in params}
            if all(values.values()):  # like Starlette's ``[^/]+``: never empty
                return route, values
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            hit = self.match(scope["path"])
            if hit is not None:
                route, params = hit
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = params
                request = Request(scope, receive, send)
                try:
                    response = await route.endpoint(request)
                except IngestError as exc:
                    response = error_response(request, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
