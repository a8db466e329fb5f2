"""Messages on the bus: requests to runners, lifecycle events, final results.

Every new field gets a default so that producers and consumers of different versions
can run side by side during a rolling upgrade; decoders skip fields they do not know.

Every message type (and ``Tensor``, ``WebhookTarget``) is ``gc=False``: services keep
hundreds of thousands of decoded results and events in their books, which the cyclic
collector otherwise walked again and again. They are frozen and hold only scalars, bytes
and tuples of each other, so they can be part of no cycle; a new field must keep it so
(no list, dict or object that could refer back).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from schemas.tensors import Tensor
from schemas.webhooks import WebhookTarget

SCHEMA_VERSION = b"1"
#: The headers every message carries besides its ``traceparent`` (DESIGN.md, Topics),
#: as one constant: pairs built for each message are objects the cyclic GC must walk
#: while the embedded bus keeps the record (two for every request).
MESSAGE_HEADERS = (("content-type", b"application/msgpack"), ("schema-version", SCHEMA_VERSION))


class ModelRef(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Which model file a request runs on; the runner verifies ``sha256``."""

    name: str
    version: str
    uri: str
    sha256: str
    #: The file's size in bytes as registered (0: unknown), which bounds a download.
    size: int = 0

    @property
    def id(self) -> str:
        """``name:version``, as the registry's ``ModelRecord.id``."""
        return f"{self.name}:{self.version}"


class UrlInput(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An input the runner fetches itself (a Binary binding: a ``.npy`` at ``url``)."""

    name: str
    url: str


class InferenceRequest(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    subtask_id: str
    task_id: str
    account_id: str
    model: ModelRef
    inputs: tuple[Tensor, ...] = ()
    url_inputs: tuple[UrlInput, ...] = ()
    #: Output names wanted, in order; empty means every output of the graph.
    outputs: tuple[str, ...] = ()
    created_at_ms: int = 0
    #: The same submit time in microseconds, so the runner's queue time resolves below a
    #: millisecond (0 from an ingest that predates it: the runner falls back to ms).
    created_at_us: int = 0
    #: Past this wall-clock time the request is answered ``expired`` and never run.
    deadline_ms: int = 0
    #: Where the notifier delivers the final event (the request's or its task's).
    webhook: WebhookTarget | None = None
    #: Batching limits of its task or model; 0 / negative: the runner's defaults.
    max_batch_size: int = 0
    max_queue_delay_ms: float = -1.0


class Timings(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Where a request's time went, in milliseconds."""

    #: From submit to a runner taking the request off the bus.
    queued_ms: float = 0.0
    fetch_ms: float = 0.0
    #: The ``session.run`` this request was part of.
    inference_ms: float = 0.0
    total_ms: float = 0.0
    #: Requests in that run (1: it ran alone).
    batch_size: int = 1
    #: From entering the batcher to its run starting (waiting for the executor).
    batch_wait_ms: float = 0.0


class _Result(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag_field="state"):
    subtask_id: str
    task_id: str
    account_id: str
    finished_at_ms: int = 0
    runner_id: str = ""
    timings: Timings = Timings()
    #: Copied from the request, so the notifier delivers from the result alone.
    webhook: WebhookTarget | None = None


class Succeeded(_Result, frozen=True, kw_only=True, gc=False, tag="succeeded"):
    outputs: tuple[Tensor, ...] = ()


class Failed(_Result, frozen=True, kw_only=True, gc=False, tag="failed"):
    error: str = ""


class Cancelled(_Result, frozen=True, kw_only=True, gc=False, tag="cancelled"):
    error: str = "cancelled"


class Expired(_Result, frozen=True, kw_only=True, gc=False, tag="expired"):
    error: str = "deadline exceeded before the request ran"


SubtaskResult = Succeeded | Failed | Cancelled | Expired

EventKind = Literal[
    "queued", "running", "progress", "log", "succeeded", "failed", "cancelled", "expired",
]


class SubtaskEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    subtask_id: str
    task_id: str
    account_id: str
    kind: EventKind
    at_ms: int
    message: str = ""
    #: Final events only: the ``GET /api/inference/subtasks/{id}`` body without its
    #: outputs (``{"id", "state", "error"}``, JSON); outputs are on ``results``.
    body: bytes = b""


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A runner's periodic "alive" record on the compacted runners topic."""

    runner_id: str
    host: str
    device: str
    providers: tuple[str, ...]
    models_loaded: tuple[str, ...] = ()
    #: Models loading now (``name:version``); a heartbeat goes out as each starts and ends.
    models_loading: tuple[str, ...] = ()
    in_flight: int = 0
    at_ms: int = 0
    state: Literal["running", "draining", "stopped"] = "running"


class Cancel(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="cancel"):
    """On ``control`` (key: subtask id): do not run this subtask; interrupt it if running.

    Every runner reads all of ``control``: the one holding the subtask answers
    ``cancelled``; the others remember the id until ``deadline_ms`` in case it reaches
    them later (the request was not consumed yet)."""

    subtask_id: str
    account_id: str = ""
    at_ms: int = 0
    #: The request's own deadline: past it nobody needs to remember the cancel.
    deadline_ms: int = 0


class EngineCommand(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="engine"):
    """On ``control`` (key: runner id): ``drain`` finishes what it holds, then leaves;
    ``stop`` hands back what it holds (redelivered to others), then leaves."""

    runner_id: str
    action: Literal["drain", "stop"] = "drain"
    #: Commands issued before a runner started are history, not meant for it.
    at_ms: int = 0


ControlMessage = Cancel | EngineCommand

_enc = msgspec.msgpack.Encoder()
request_decoder = msgspec.msgpack.Decoder(InferenceRequest)
result_decoder = msgspec.msgpack.Decoder(SubtaskResult)
event_decoder = msgspec.msgpack.Decoder(SubtaskEvent)
heartbeat_decoder = msgspec.msgpack.Decoder(Heartbeat)
control_decoder = msgspec.msgpack.Decoder(ControlMessage)


def encode(message: msgspec.Struct) -> bytes:
    """msgpack of any bus message."""
    return _enc.encode(message)
