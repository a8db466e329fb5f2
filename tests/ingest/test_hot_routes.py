"""HotRoutes: hot POSTs reach their endpoint past the router; the rest is left to Starlette."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ingest.errors import NotFound
from ingest.hot_routes import HotRoutes

seen_routes: list[str] = []


async def infer(request: Request) -> Response:
    if request.path_params["name"] == "missing":
        raise NotFound("model missing not found")
    body = await request.body()
    return JSONResponse({"params": request.path_params, "body": body.decode(),
                         "via": request.scope.get("router") is None})


async def other(request: Request) -> Response:
    return JSONResponse({"other": True})


class RouteLabel:
    """Stands in for HttpMetrics: reads the route the request was matched to."""

    def __init__(self, app: object) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)  # type: ignore[operator]
        route = scope.get("route")
        seen_routes.append(getattr(route, "path", "unmatched"))


def app() -> Starlette:
    routes = [Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
              Route("/v2/models/{name}/infer", infer, methods=["POST"]),
              Route("/v2/models/{name}/other", other, methods=["POST"])]
    return Starlette(routes=routes, middleware=[
        Middleware(RouteLabel), Middleware(HotRoutes, routes=routes[:2])])


async def test_hot_posts_skip_the_router_and_keep_params_label_and_errors() -> None:
    seen_routes.clear()
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.post("/v2/models/m1/versions/7/infer", content=b"abc")
        assert r.status_code == 200
        # Served by HotRoutes: Starlette's router never set its scope key.
        assert r.json() == {"params": {"name": "m1", "version": "7"}, "body": "abc",
                            "via": True}
        r = await c.post("/v2/models/m2/infer", content=b"")
        assert r.json()["params"] == {"name": "m2"} and r.json()["via"] is True
        # An IngestError is answered like the app's handler answers it.
        r = await c.post("/v2/models/missing/infer", content=b"")
        assert r.status_code == 404 and r.json()["error"]["message"] == \
            "model missing not found"
        # Not hot, or not an exact match: Starlette decides (405, redirect, 404, route).
        r = await c.get("/v2/models/m1/infer")
        assert r.status_code == 405
        r = await c.post("/v2/models//infer", content=b"")
        assert r.status_code == 404
        r = await c.post("/v2/models/m1/other", content=b"")
        assert r.json() == {"other": True}
    assert seen_routes[:3] == ["/v2/models/{name}/versions/{version}/infer",
                               "/v2/models/{name}/infer", "/v2/models/{name}/infer"]
    assert seen_routes[-1] == "/v2/models/{name}/other"


def test_a_hot_route_must_take_post() -> None:
    try:
        HotRoutes(other, [Route("/x/{a}", other, methods=["GET"])])  # type: ignore[arg-type]
    except ValueError as exc:
        assert "does not take POST" in str(exc)
    else:
        raise AssertionError("a GET-only hot route was accepted")
