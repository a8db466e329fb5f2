"""Every error path of the submit API: status, body, and that nothing reached the bus."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests import onnx_models
from tests.harness import Stack, running_stack


@pytest.fixture
async def world(kafka_bootstrap: str | None, tmp_path: Path
                ) -> AsyncIterator[tuple[Stack, dict[str, str]]]:
    async with running_stack(kafka_bootstrap, tmp_path) as s:
        ints = await s.upload_model("ints", onnx_models.int_model())
        ids = {
            "task": await s.create_task("acme", ints),
            "no_api": await s.create_task("acme", ints, fill=False),
            "text": await s.create_task(
                "acme", await s.upload_model("t", onnx_models.text_model())),
            "other_task": await s.create_task("globex", ints),
            "key": await s.create_key("acme"),
            "other_key": await s.create_key("globex"),
        }
        yield s, ids


def jb(name: str, value: Any) -> dict[str, Any]:
    return {"tensorName": name, "payloadType": "Json", "payload": json.dumps(value),
            "fileUrl": None}


GOOD = [jb("a", [[1, 2, 3]]), jb("b", [[4, 5, 6]])]


def assert_error(r: Any, status: int, *fragments: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and body["status"] == status
    for f in fragments:
        assert f in body["error"]["message"], (f, body)


async def test_auth_errors(world: tuple[Stack, dict[str, str]]) -> None:
    s, ids = world
    url = f"{s.base_url}/api/inference/tasks/{ids['task']}"
    r = await s.client.post(url, json={"bindings": GOOD})
    assert_error(r, 401, "missing API key")
    assert r.json()["error"]["code"] == "unauthorized"
    r = await s.client.post(url, json={"bindings": GOOD}, headers={"X-Api-Key": "pk-nope"})
    assert_error(r, 401, "invalid API key")
    forged = ids["key"][:-1] + ("0" if ids["key"][-1] != "0" else "1")
    assert_error(await s.submit(ids["task"], forged, GOOD), 401, "invalid API key")

    # Revoked keys stop working at once; the account's other keys do not.
    key_id = ids["key"].split("-")[1]
    spare = await s.create_key("acme")
    r = await s.admin("DELETE", f"/admin/keys/{key_id}")
    assert r.status_code == 200 and r.json()["revokedAtMs"]
    assert_error(await s.submit(ids["task"], ids["key"], GOOD), 401, "revoked")
    assert (await s.submit(ids["task"], spare, GOOD)).json()["state"] == "success"


async def test_rotation_keeps_account(world: tuple[Stack, dict[str, str]]) -> None:
    s, ids = world
    key_id = ids["key"].split("-")[1]
    r = await s.admin("POST", f"/admin/keys/{key_id}/rotate", json={"graceSeconds": 0})
    assert r.status_code == 201
    new_key = r.json()["key"]
    assert new_key.startswith("pk-") and new_key != ids["key"]
    assert (await s.submit(ids["task"], new_key, GOOD)).json()["state"] == "success"
    assert_error(await s.submit(ids["task"], ids["key"], GOOD), 401, "revoked")
    # Keys are listed without any secret material.
    listed = (await s.admin("GET", "/admin/keys")).json()
    assert all("key" not in k and "keyHash" not in k for k in listed)
    assert new_key not in json.dumps(listed)


async def test_not_found_and_isolation(world: tuple[Stack, dict[str, str]]) -> None:
    s, ids = world
    assert_error(await s.submit("no-such-task", ids["key"], GOOD), 404, "not found")
    # Another account's task looks exactly like a missing one.
    r = await s.submit(ids["other_task"], ids["key"], GOOD)
    assert_error(r, 404, f"task {ids['other_task']} not found")
    ok = (await s.submit(ids["task"], ids["key"], GOOD)).json()
    sub = f"{s.base_url}/api/inference/subtasks/{ok['id']}"
    r = await s.client.get(sub, headers={"X-Api-Key": ids["other_key"]})
    assert_error(r, 404, "not found")
    nobody = "00000000-0000-0000-0000-000000000000"
    r = await s.client.get(f"{s.base_url}/api/inference/subtasks/{nobody}",
                           headers={"X-Api-Key": ids["key"]})
    assert_error(r, 404, "not found")
    assert_error(await s.client.get(sub), 401, "missing API key")


BAD_BODIES: list[tuple[Any, str]] = [
    (b"{not json", "not valid JSON"),
    ({"bindings": GOOD, "extra": 1}, "unknown field `extra`"),
    ({}, "missing required field `bindings`"),
    ({"bindings": [{**GOOD[0], "payloadType": "Xml"}, GOOD[1]]}, "Xml"),
    ({"bindings": [jb("a", [[1, 2, 3]])]}, "missing binding for tensor 'b' (int64 [?, 3])"),
    ({"bindings": [*GOOD, jb("c", [[1]])]}, "unknown tensor 'c'"),
    ({"bindings": [GOOD[0], GOOD[0], GOOD[1]]}, "bound more than once"),
    ({"bindings": [jb("a", [[1, 2]]), GOOD[1]]},
     "tensor 'a': shape [1, 2] does not match the model's int64 [?, 3]"),
    ({"bindings": [jb("a", [1, 2, 3]), GOOD[1]]}, "shape [3] does not match"),
    ({"bindings": [jb("a", [["x", "y", "z"]]), GOOD[1]]}, "tensor 'a' expects int64 numbers"),
    ({"bindings": [jb("a", [[1.5, 2, 3]]), GOOD[1]]}, "tensor 'a' expects integers"),
    ({"bindings": [jb("a", [[1, 2], [3]]), GOOD[1]]}, "ragged"),
    ({"bindings": [jb("a", [[2**70, 0, 0]]), GOOD[1]]}, "do not fit int64"),
    ({"bindings": [{"tensorName": "a", "payloadType": "Json", "payload": None}, GOOD[1]]},
     "payloadType Json needs a payload"),
    ({"bindings": [{"tensorName": "a", "payloadType": "Json", "payload": "[[1,2"}, GOOD[1]]},
     "payload is not valid JSON"),
    ({"bindings": [{"tensorName": "a", "payloadType": "Binary", "payload": None}, GOOD[1]]},
     "payloadType Binary needs a fileUrl"),
    ({"bindings": [{"tensorName": "a", "payloadType": "Binary", "fileUrl": "ftp://x/a.npy"},
                   GOOD[1]]}, "fileUrl must be an http(s) URL"),
    ({"bindings": [{"tensorName": "a", "payloadType": "Text", "payload": "hi"}, GOOD[1]]},
     "Text feeds string tensors; the model expects int64 [?, 3]"),
]


async def test_bad_bodies_are_400_and_never_reach_the_bus(
    world: tuple[Stack, dict[str, str]]
) -> None:
    s, ids = world
    before = await s.count_records(s.topics.requests)
    url = f"{s.base_url}/api/inference/tasks/{ids['task']}"
    for body, fragment in BAD_BODIES:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        r = await s.client.post(url, content=content, headers={
            "X-Api-Key": ids["key"], "Content-Type": "application/json"})
        assert_error(r, 400, fragment)
        assert r.json()["error"]["code"] == "invalid_request"
    r = await s.submit(ids["no_api"], ids["key"], GOOD)
    assert_error(r, 400, "not configured for API bindings")
    r = await s.submit(ids["text"], ids["key"], [jb("text", [[1]])])
    assert_error(r, 400, "tensor 'text' expects strings")
    assert await s.count_records(s.topics.requests) == before


async def test_problem_json_with_api_version_2(world: tuple[Stack, dict[str, str]]) -> None:
    s, ids = world
    r = await s.client.post(f"{s.base_url}/api/inference/tasks/{ids['task']}",
                            json={"bindings": GOOD}, headers={"X-API-Version": "2"})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == {"type": "https://inferq.dev/errors/unauthorized", "title": "Unauthorized",
                        "status": 401, "detail": "missing API key: send it in the X-Api-Key header"}


async def test_oversized_body_is_refused(kafka_bootstrap: str | None, tmp_path: Path) -> None:
    async with running_stack(kafka_bootstrap, tmp_path,
                             ingest_overrides={"max_body_bytes": 4096}) as s:
        task = await s.create_task("acme", await s.upload_model("ints", onnx_models.int_model()))
        key = await s.create_key("acme")
        big = [jb("a", [[1, 2, 3]] * 400), GOOD[1]]
        r = await s.submit(task, key, big)
        assert r.status_code == 413
        assert "exceeds the limit of 4096" in r.json()["error"]["message"]
