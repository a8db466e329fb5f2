"""A final event's body on ``events`` is the GET body without its outputs."""

from __future__ import annotations

import json

import numpy as np

from schemas.messages import Cancelled, Expired, Failed, Succeeded
from schemas.submit_api import final_event_body, json_encoder, submit_response
from schemas.tensors import encode_array


def test_a_success_names_its_state_and_leaves_the_outputs_to_results() -> None:
    result = Succeeded(subtask_id="s1", task_id="t", account_id="a",
                       outputs=(encode_array("y", np.arange(4096, dtype=np.float32)),))
    body = json.loads(json_encoder.encode(final_event_body("s1", result)))
    get_body = json.loads(json_encoder.encode(submit_response("s1", result)))
    assert body == {k: v for k, v in get_body.items() if k != "data"}
    assert body == {"id": "s1", "state": "success", "error": None}


def test_every_other_end_is_failed_with_its_error_as_the_get_body_says() -> None:
    for result in (Failed(subtask_id="s2", task_id="t", account_id="a", error="bad shape"),
                   Cancelled(subtask_id="s2", task_id="t", account_id="a"),
                   Expired(subtask_id="s2", task_id="t", account_id="a")):
        body = json.loads(json_encoder.encode(final_event_body("s2", result)))
        get_body = json.loads(json_encoder.encode(submit_response("s2", result)))
        assert body == {k: v for k, v in get_body.items() if k != "data"}
        assert body["state"] == "failed" and body["error"] == result.error
