"""The OpenAPI document is true: it lists every route, and schemathesis finds no 5xx and no
response that breaks it, against a live server on both buses."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.routing import Route

from tests import onnx_models
from tests.harness import ADMIN_TOKEN, Stack, running_stack

# Responses must conform; positive/negative-data checks need a stateful model of the
# registry (valid task ids) and stay out.
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance")


@pytest.fixture
async def stack(kafka_bootstrap: str | None, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(kafka_bootstrap, tmp_path) as s:
        yield s


def app_operations(stack: Stack) -> set[tuple[str, str]]:
    ops = set()
    for route in stack.app.routes:
        assert isinstance(route, Route), route
        if ":path}" in route.path:
            continue  # a dialect's catch-all answering 404/405 in its shape
        for method in route.methods or ():
            if method != "HEAD":
                ops.add((method.lower(), route.path))
    return ops


async def test_document_lists_every_route(stack: Stack) -> None:
    r = await stack.client.get(f"{stack.base_url}/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    documented = {(m, p) for p, item in doc["paths"].items() for m in item}
    assert documented == app_operations(stack)
    page = await stack.client.get(f"{stack.base_url}/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/api/inference/tasks/{task_id}" in page.text and "<script" not in page.text


async def test_schemathesis_conformance(stack: Stack, tmp_path: Path) -> None:
    task = await stack.create_task("acme", await stack.upload_model("add", onnx_models.add_model()))
    key = await stack.create_key("acme")
    st = Path(sys.executable).with_name("st")
    proc = await asyncio.create_subprocess_exec(
        str(st), "run", f"{stack.base_url}/openapi.json",
        "--checks", CHECKS, "--phases", "examples,coverage,fuzzing",
        "--max-examples", "5", "--seed", "20240611", "--workers", "1", "--max-time", "25",
        "--request-timeout", "20", "--no-shrink", "--suppress-health-check", "all",
        "--warnings", "off",
        "-H", f"X-Api-Key: {key}", "-H", f"Authorization: Bearer {ADMIN_TOKEN}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path, env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "NO_COLOR": "1"},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 150)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    assert task  # the registry had a real task and key while it ran
