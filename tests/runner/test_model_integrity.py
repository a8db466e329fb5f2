"""Runners verify a model's sha256 before loading it; a mismatch fails the request."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests import onnx_models
from tests.harness import running_stack


async def test_tampered_model_file_is_refused(kafka_bootstrap: str | None,
                                              tmp_path: Path) -> None:
    async with running_stack(kafka_bootstrap, tmp_path) as s:
        model_id = await s.upload_model("ints", onnx_models.int_model())
        task = await s.create_task("acme", model_id)
        key = await s.create_key("acme")
        uri = s.app.state.ctx.registry.models[model_id].uri
        path = Path(unquote(urlsplit(uri).path))
        # Same signature, other weights: only the checksum can tell.
        path.write_bytes(onnx_models.int_model() + b"\n")
        body = (await s.submit(task, key, [
            {"tensorName": "a", "payloadType": "Json", "payload": json.dumps([[1, 2, 3]])},
            {"tensorName": "b", "payloadType": "Json", "payload": json.dumps([[1, 2, 3]])},
        ])).json()
        assert body["state"] == "failed"
        assert body["error"] == f"model {model_id}: sha256 mismatch for {uri}"
