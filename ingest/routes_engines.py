"""Engines: the live runners from their heartbeats, and commands to them.

Listing and reading take any valid API key or the admin token: runners are shared, and
a heartbeat holds nothing of any account. Drain and stop change the fleet, so they take
the admin token; an API key gets 403 ``forbidden``. Commands go out on ``control``
(key: runner id), which every runner reads.
"""

from __future__ import annotations

import hmac
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest.auth import authenticate
from ingest.body import api_key
from ingest.context import IngestContext
from ingest.errors import Forbidden, NotFound, Unavailable
from ingest.responses import versioned_response
from schemas.messages import MESSAGE_HEADERS, EngineCommand, Heartbeat, encode
from schemas.tasks_api import EngineCommandDTO, EngineDTO, rfc3339


def engine_dto(hb: Heartbeat) -> EngineDTO:
    return EngineDTO(id=hb.runner_id, host=hb.host, device=hb.device,
                     providers=list(hb.providers), models_loaded=list(hb.models_loaded),
                     models_loading=list(hb.models_loading),
                     in_flight=hb.in_flight, last_seen=rfc3339(hb.at_ms), state=hb.state)


def routes(ctx: IngestContext) -> list[Route]:
    def is_admin(key: str | None) -> bool:
        token = ctx.settings.admin_token
        return bool(token and key and hmac.compare_digest(key.encode(), token.encode()))

    def caller(request: Request) -> bool:
        """Authenticates; True for the admin token."""
        key = api_key(request)
        if is_admin(key):
            return True
        authenticate(ctx.registry, key)
        return False

    def live() -> list[Heartbeat]:
        now = int(time.time() * 1000)
        horizon = now - int(ctx.runners.stale_after_s * 1000)
        return sorted((hb for hb in ctx.runners.heartbeats.values()
                       if hb.state != "stopped" and hb.at_ms >= horizon),
                      key=lambda hb: hb.runner_id)

    def find(engine_id: str) -> Heartbeat:
        for hb in live():
            if hb.runner_id == engine_id:
                return hb
        raise NotFound(f"engine {engine_id} not found")

    async def list_engines(request: Request) -> Response:
        caller(request)
        return versioned_response(request, [engine_dto(hb) for hb in live()])

    async def get_engine(request: Request) -> Response:
        caller(request)
        return versioned_response(request, engine_dto(find(request.path_params["id"])))

    async def command(request: Request, action: str) -> Response:
        if not caller(request):
            raise Forbidden(f"{action} needs the admin token; API keys may only list engines")
        hb = find(request.path_params["id"])
        cmd = EngineCommand(runner_id=hb.runner_id, action="stop" if action == "stop"
                            else "drain", at_ms=int(time.time() * 1000))
        try:
            await ctx.bus.publish(ctx.topics.control, hb.runner_id.encode(), encode(cmd),
                                  MESSAGE_HEADERS)
        except Exception as exc:
            raise Unavailable(f"the command could not be sent: {exc}") from exc
        return versioned_response(request, EngineCommandDTO(id=hb.runner_id, action=action,
                                                            accepted=True), 202)

    async def drain(request: Request) -> Response:
        return await command(request, "drain")

    async def stop(request: Request) -> Response:
        return await command(request, "stop")

    return [
        Route("/engines/list", list_engines, methods=["POST", "GET"]),
        Route("/engines/{id}", get_engine, methods=["GET"]),
        Route("/engines/{id}/drain", drain, methods=["POST"]),
        Route("/engines/{id}/stop", stop, methods=["POST"]),
    ]
