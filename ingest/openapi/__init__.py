"""The OpenAPI 3.1 document of ingest's HTTP surface, served at /openapi.json and /docs.

One module per dialect, each with ``paths(spec)``; adding a dialect is a module and a
line in ``DIALECTS``. ``tests/e2e/test_openapi_conformance.py`` runs schemathesis
against a live server, so the document cannot drift from what the handlers do.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ingest.openapi import admin, ops, submit, tasks, v2
from ingest.openapi.builder import JSON, Spec, errors
from ingest.rate_limit import classify
from ingest.responses import json_response

DIALECTS: tuple[Callable[[Spec], JSON], ...] = (ops.paths, submit.paths, admin.paths,
                                                v2.paths, tasks.paths)
_METHODS = ("get", "post", "put", "patch", "delete")


def document(version: str = "0.1.0") -> JSON:
    spec = Spec()
    paths: JSON = {}
    for dialect in DIALECTS:
        for path, item in dialect(spec).items():
            paths.setdefault(path, {}).update(item)
    # Rate limits apply across dialects (ingest/rate_limit.py): 429 wherever they do.
    for path, item in paths.items():
        for method, op in item.items():
            if classify(method.upper(), path) is not None:
                op["responses"] = errors(429) | op["responses"]
    return {
        "openapi": "3.1.0",
        "info": {"title": "inferq", "version": version,
                 "description": "Event-driven ONNX inference over HTTP and Kafka."},
        "paths": paths,
        "components": {
            "schemas": spec.components(),
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "bearerKey": {"type": "http", "scheme": "bearer",
                              "description": "an API key as a bearer token"},
                "adminToken": {"type": "http", "scheme": "bearer",
                               "description": "INFERQ_ADMIN_TOKEN"},
            },
        },
    }


def docs_page(doc: JSON) -> str:
    """A self-contained page (no scripts, no CDN) listing every operation."""
    rows = []
    for path, item in doc["paths"].items():
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            codes = ", ".join(op["responses"])
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}"
                f"</code></td><td>{html.escape(op.get('summary', ''))}</td>"
                f"<td>{html.escape(', '.join(op.get('tags', [])))}</td><td>{codes}</td></tr>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>inferq API</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.3em .8em;"
        "text-align:left;border-bottom:1px solid #ddd}</style></head><body>"
        f"<h1>{html.escape(doc['info']['title'])} API {html.escape(doc['info']['version'])}"
        "</h1><p>The machine-readable document: <a href='/openapi.json'>/openapi.json</a> "
        "(OpenAPI 3.1).</p><table><tr><th>method</th><th>path</th><th>summary</th>"
        "<th>tag</th><th>responses</th></tr>" + "".join(rows) + "</table></body></html>")


def routes() -> list[Route]:
    doc = document()
    page = docs_page(doc)

    async def openapi_json(request: Request) -> Response:
        return json_response(doc)

    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    return [Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/docs", docs, methods=["GET"])]
