"""The Python example of the submit API document, run with only its constants replaced."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tests import onnx_models
from tests.harness import running_stack

# Verbatim from the submit API document (shared/seeds/submit-api.txt, "Python").
DOC_EXAMPLE = '''
import requests

API_KEY  = "pk-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
BASE_URL = "https://infinite-gpu-backend-bvh8a7c3fdgxd7c5.canadacentral-01.azurewebsites.net"
TASK_ID  = "your-task-id-here"

# Submit inference
response = requests.post(
    f"{BASE_URL}/api/inference/tasks/{TASK_ID}",
    headers={
        "Content-Type": "application/json",
        "X-Api-Key": API_KEY,
    },
    json={
        "bindings": [
            {
                "tensorName": "input_ids",
                "payloadType": "Json",
                "payload": "[[101, 2054, 2003, 102]]",
                "fileUrl": None,
            }
        ]
    },
)

result = response.json()
print(result["state"])  # "success", "failed", or "pending"
print(result["data"])   # inference output

# Re-check result later
subtask_id = result["id"]
poll = requests.get(
    f"{BASE_URL}/api/inference/subtasks/{subtask_id}",
    headers={"X-Api-Key": API_KEY},
)
print(poll.json())
'''


def with_constants(base_url: str, key: str, task_id: str) -> str:
    code = re.sub(r'API_KEY  = ".*"', f'API_KEY  = "{key}"', DOC_EXAMPLE)
    code = re.sub(r'BASE_URL = ".*"', f'BASE_URL = "{base_url}"', code)
    return re.sub(r'TASK_ID  = ".*"', f'TASK_ID  = "{task_id}"', code)


async def test_python_example_from_the_document(kafka_bootstrap: str | None,
                                                tmp_path: Path) -> None:
    model = onnx_models.token_model()
    async with running_stack(kafka_bootstrap, tmp_path) as s:
        task = await s.create_task("acme", await s.upload_model("tokens", model))
        key = await s.create_key("acme")
        code = with_constants(s.base_url, key, task)
        assert code.count(key) == 1 and code.count(task) == 1

        def run() -> tuple[str, dict[str, object]]:
            out = io.StringIO()
            namespace: dict[str, object] = {}
            with contextlib.redirect_stdout(out):
                exec(compile(code, "submit-api-example.py", "exec"), namespace)  # noqa: S102
            return out.getvalue(), namespace

        printed, ns = await asyncio.to_thread(run)
    lines = printed.splitlines()
    assert lines[0] == "success"
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(
        None, {"input_ids": np.array([[101, 2054, 2003, 102]], np.int64)})[0]
    result = ns["result"]
    assert isinstance(result, dict)
    np.testing.assert_array_equal(np.array(result["data"]["output_logits"], np.float32), want)
    poll = ns["poll"].json()  # type: ignore[attr-defined]
    assert poll == result
