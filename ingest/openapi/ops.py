"""Health, readiness, metrics and the documentation routes."""

from __future__ import annotations

from ingest.openapi.builder import JSON, Spec, json_content, ok

_STATUS: JSON = {"type": "object", "properties": {"status": {"enum": ["ok", "starting"]}},
                 "required": ["status"]}


def paths(spec: Spec) -> JSON:
    return {
        "/healthz": {"get": {
            "tags": ["operations"], "operationId": "liveness", "security": [],
            "summary": "Liveness: the process answers",
            "responses": ok(200, "Alive", _STATUS),
        }},
        "/readyz": {"get": {
            "tags": ["operations"], "operationId": "readiness", "security": [],
            "summary": "Readiness: registry and results replayed, bus reachable",
            "responses": ok(200, "Ready", _STATUS) | {
                "503": {"description": "Still starting", "content": json_content(_STATUS)}},
        }},
        "/metrics": {"get": {
            "tags": ["operations"], "operationId": "metrics", "security": [],
            "summary": "Prometheus metrics (text exposition format)",
            "responses": ok(200, "Metrics", {"type": "string"}, "text/plain"),
        }},
        "/openapi.json": {"get": {
            "tags": ["operations"], "operationId": "openapi", "security": [],
            "summary": "This document",
            "responses": ok(200, "OpenAPI 3.1 document", {"type": "object"}),
        }},
        "/docs": {"get": {
            "tags": ["operations"], "operationId": "docs", "security": [],
            "summary": "A page listing every operation of this document",
            "responses": ok(200, "HTML page", {"type": "string"}, "text/html"),
        }},
    }
