"""The runner service: one consumer loop over the requests topic.

Flow per record: decode -> deadline check -> fetch URL inputs -> model -> ONNX Runtime
in the executor -> publish the result and wait for the broker's acknowledgement ->
mark the offset handled. Only the contiguous handled prefix of each partition is
committed (``bus.offsets.Committer``), so a crash redelivers exactly what was not answered;
results are idempotent by subtask id, so a redelivery costs work, never correctness.

At most ``max_in_flight`` records are held; beyond that the partitions are paused but
the consumer keeps polling, so a long model run never gets this member evicted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from bus.base import Bus, BusError, GroupConsumer, Headers, Record
from bus.offsets import Committer
from bus.topics import TopicNames
from obs.histogram import LoopHistogram
from obs.metrics import LATENCY_BUCKETS
from obs.tracing import log_fields, record_span
from runner.batcher import BatchCancelled, Batcher, BatchExpired, BatchLimits
from runner.control import ControlListener
from runner.cpu_quota import usable_cores
from runner.errors import RunnerError
from runner.execute import build_feeds, encode_outputs, output_names
from runner.fetch import NpyFetcher
from runner.models import ModelCache, fitted_intra_op_threads
from runner.preload import preload
from runner.providers import device_of, usable_providers
from runner.settings import RunnerSettings
from runner.tensorrt import TensorRTOptions
from schemas.messages import (
    MESSAGE_HEADERS,
    Cancelled,
    EngineCommand,
    Expired,
    Failed,
    Heartbeat,
    InferenceRequest,
    SubtaskEvent,
    SubtaskResult,
    Succeeded,
    Timings,
    encode,
    request_decoder,
)
from schemas.state import final_state
from schemas.submit_api import final_event_body

log = logging.getLogger(__name__)
_json = msgspec.json.Encoder()

#: Room left in a record for everything but the output bytes.
_RESULT_OVERHEAD = 64 * 1024


class _Ids(msgspec.Struct):
    """Enough of a request to answer it when the rest does not decode."""

    subtask_id: str
    task_id: str = ""
    account_id: str = ""


_ids_decoder = msgspec.msgpack.Decoder(_Ids)


def _queued_ms(req: InferenceRequest, now_us: int) -> float:
    """Time from submit to now, to the microsecond where the request carries it (a
    millisecond stamp cannot tell 0.1 ms from 0.9 ms, most of a queue time on the
    embedded bus); 0 for a request without a submit time."""
    if req.created_at_us:
        return max(0.0, (now_us - req.created_at_us) / 1000)
    if req.created_at_ms:
        return float(max(0, now_us // 1000 - req.created_at_ms))
    return 0.0


class RunnerMetrics:
    """Observed on the event loop, once per result (``obs.histogram``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.results = Counter("inferq_runner_results", "results published by state",
                               ["state"], registry=registry)
        self.inference = LoopHistogram("inferq_runner_inference_seconds", "session.run time",
                                       registry=registry, buckets=LATENCY_BUCKETS)
        self.queued = LoopHistogram("inferq_runner_queue_seconds",
                                    "time from submit to the runner taking the request",
                                    registry=registry, buckets=LATENCY_BUCKETS)
        self.in_flight = Gauge("inferq_runner_in_flight", "requests held", registry=registry)
        self.queue_depth = Gauge("inferq_runner_queue_depth",
                                 "requests queued in the batcher for a run", registry=registry)
        self.consumer_lag = Gauge("inferq_runner_consumer_lag",
                                  "records on this runner's partitions not yet fetched",
                                  registry=registry)
        self.batch_wait = LoopHistogram("inferq_runner_batch_wait_seconds",
                                        "time in the batcher before the run started",
                                        registry=registry, buckets=LATENCY_BUCKETS)
        self.fetch = LoopHistogram("inferq_runner_fetch_seconds", "time fetching URL inputs",
                                   registry=registry, buckets=LATENCY_BUCKETS)
        self.batch_size = LoopHistogram("inferq_runner_batch_size", "requests per session.run",
                                        registry=registry,
                                        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))


class Runner:
    def __init__(self, settings: RunnerSettings, bus: Bus,
                 metrics: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self._bus = bus
        self._topics = TopicNames(settings.bus.topic_prefix)
        self._metrics = RunnerMetrics(metrics or CollectorRegistry())
        self._results_by_state: dict[str, Counter] = {}  # labelled children, a handful
        self._executor = ThreadPoolExecutor(settings.executor_threads,
                                            thread_name_prefix="ort")
        self._fetcher = NpyFetcher(allow_private=settings.allow_private_urls,
                                   max_bytes=settings.fetch_max_bytes,
                                   timeout_s=settings.fetch_timeout_s,
                                   files_dir=settings.files_dir)
        self._batcher = Batcher(self._executor, slots=settings.executor_threads,
                                defaults=BatchLimits(settings.max_batch_size,
                                                     settings.max_queue_delay_ms / 1000),
                                max_queued=settings.max_in_flight,
                                inline_below_s=settings.inline_run_us / 1e6,
                                inline_limit_s=settings.inline_limit_ms / 1000,
                                counts_arrivals=True)
        self._commits = Committer()
        self._metrics.queue_depth.set_function(lambda: self._batcher.queued)
        # Read at scrape time: the loop only updates it after its next fetch.
        self._metrics.in_flight.set_function(lambda: len(self._tasks))
        self._consumer: GroupConsumer | None = None
        self._cache: ModelCache | None = None
        self.providers: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._handled = 0  # results published, for the drain log line
        self._background: list[asyncio.Task[None]] = []
        self._slot = asyncio.Event()
        self._state: str = "running"
        self.started = asyncio.Event()
        self._control = ControlListener(bus, self._topics.control, settings.runner_id,
                                        on_cancel=self._batcher.cancel,
                                        on_command=self._command)
        #: Called when a drain/stop command arrives; the runner process sets it to end
        #: itself (SIGTERM path, exit 0). Unset: the runner stops itself (``inferq up``).
        self.on_exit_requested: Callable[[], None] | None = None
        self._hand_back = False
        self._stop_task: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def batcher(self) -> Batcher:
        return self._batcher

    async def __aenter__(self) -> Runner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.providers = await loop.run_in_executor(
            self._executor, usable_providers, self.settings.providers)
        cores = usable_cores()
        intra_op_threads = fitted_intra_op_threads(
            self.settings.intra_op_threads, self.settings.executor_threads, cores)
        log.info("onnx runtime threads", extra={
            "intra_op_threads": intra_op_threads,
            "executor_threads": self.settings.executor_threads,
            "cores_affinity": cores.affinity, "cpu_quota": cores.quota})
        self._cache = ModelCache(providers=self.providers, cache_dir=self.settings.cache_dir,
                                 cache_max_bytes=self.settings.cache_max_bytes,
                                 max_model_bytes=self.settings.max_model_bytes,
                                 max_models=self.settings.max_models,
                                 intra_op_threads=intra_op_threads,
                                 executor=self._executor, spin=self.settings.ort_spin,
                                 io_binding=self.settings.io_binding,
                                 warm_batch=self.settings.max_batch_size,
                                 tensorrt=TensorRTOptions(self.settings.trt_cache_dir,
                                                          self.settings.trt_fp16),
                                 on_change=self._loads_changed)
        await self._bus.ensure_topics(self._topics.specs(self.settings.bus.partitions))
        if self.settings.preload:  # before taking partitions: see runner/preload.py
            await preload(self._bus, self._topics.registry, self.settings.preload,
                          self._cache, max_models=self.settings.max_models,
                          model_base_url=self.settings.model_base_url)
        await self._fetcher.start()
        self._consumer = self._bus.group_consumer([self._topics.requests], self.settings.group_id)
        self._commits.attach(self._consumer)
        self._metrics.consumer_lag.set_function(self._consumer.lag)
        await self._consumer.start()
        await self._control.start()
        self._background = [
            asyncio.create_task(self._consume(), name="runner-consume"),
            asyncio.create_task(self._commits.run(), name="runner-commit"),
            asyncio.create_task(self._heartbeat_loop(), name="runner-heartbeat"),
        ]
        self.started.set()
        log.info("runner started", extra={"runner_id": self.settings.runner_id,
                                          "providers": self.providers,
                                          "device": device_of(self.providers)})

    async def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Stop intake, finish what is held, commit, leave the group, close clients.

        After a ``stop`` command, what is held is handed back instead (not committed,
        so the group redelivers it to another runner)."""
        if self._stopped:
            return
        self._stopped = True
        self._close_intake()
        if self._hand_back:
            drain_timeout_s = 0.0
        with contextlib.suppress(BusError):  # shows `draining` at once, not next beat
            await self._bus.publish(self._topics.runners, self.settings.runner_id.encode(),
                                    encode(self.heartbeat()), MESSAGE_HEADERS)
        if self._background:
            await asyncio.gather(self._background[0], return_exceptions=True)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=drain_timeout_s)
        for task in list(self._tasks):  # past the timeout: handed back, redelivered
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._commits.commit_now()
        for task in self._background[1:]:
            task.cancel()
        await asyncio.gather(*self._background[1:], return_exceptions=True)
        self._state = "stopped"
        try:
            await self._bus.publish(self._topics.runners, self.settings.runner_id.encode(), None)
        except BusError:
            pass
        if self._consumer is not None:
            await self._consumer.stop()
        await self._control.stop()
        await self._fetcher.stop()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._batcher.close()
        log.info("runner stopped", extra={"runner_id": self.settings.runner_id})

    def _command(self, cmd: EngineCommand) -> None:
        if self._stopped or self._stop_task is not None:
            return
        self._hand_back = cmd.action == "stop"
        # Intake stops now, not when the process gets round to stop(): a server shutting
        # down first would otherwise keep taking requests it is about to hand back.
        self._close_intake()
        if self.on_exit_requested is not None:
            self.on_exit_requested()
        else:
            self._stop_task = asyncio.create_task(self.stop(), name="runner-drain")

    def _close_intake(self) -> None:
        if self._state == "draining":
            return
        self._state = "draining"
        if self._background:
            self._background[0].cancel()
        log.info("runner draining", extra={"runner_id": self.settings.runner_id,
                                           "handled": self._handled,
                                           "holding": sum(not t.done() for t in self._tasks)})

    # consuming ---------------------------------------------------------------------
    async def _consume(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        paused = False
        while True:
            free = self.settings.max_in_flight - len(self._tasks)
            if free <= 0:
                if not paused:
                    consumer.pause()
                    paused = True
                # Resume as soon as a request finishes (not at the next poll: a full
                # runner would otherwise idle up to the poll interval), and keep polling
                # while paused: it keeps this member in its group.
                # (A timer, not wait_for: on 3.11 wait_for can swallow a cancel that
                # races the event, and stop() would wait on this loop forever.)
                self._slot.clear()
                poll = asyncio.get_running_loop().call_later(0.2, self._slot.set)
                try:
                    await self._slot.wait()
                finally:
                    poll.cancel()
                records = await consumer.fetch(1, 0)
            else:
                if paused:
                    consumer.resume()
                    paused = False
                records = await consumer.fetch(free, 0.5)
            self._batcher.expect(len(records))
            for rec in records:
                self._commits.started((rec.topic, rec.partition), rec.offset)
                task = asyncio.create_task(self._handle(rec))
                self._tasks.add(task)
                task.add_done_callback(self._done)
            self._metrics.in_flight.set(len(self._tasks))

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slot.set()

    async def _handle(self, rec: Record) -> None:
        # From here to ``_process``'s announce (or a failed decode) nothing awaits: the
        # batcher counts this request as expected, then as announced, with no gap.
        self._batcher.arrived()
        tp = (rec.topic, rec.partition)
        start_ns = time.time_ns()
        try:
            req = request_decoder.decode(rec.value or b"")
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            await self._undecodable(rec, str(exc))
            self._finished(tp, rec.offset)
            return
        # Every message the request leads to carries its trace (DESIGN.md, Topics): one
        # tuple for the running event, the result and the final event.
        traceparent = rec.header("traceparent")
        headers = (*MESSAGE_HEADERS, ("traceparent", traceparent or b""))
        result = await self._process(req, headers)
        payload = encode(result)
        if len(payload) > self.settings.bus.max_message_bytes - _RESULT_OVERHEAD:
            result = Failed(subtask_id=req.subtask_id, task_id=req.task_id,
                            account_id=req.account_id, runner_id=self.settings.runner_id,
                            finished_at_ms=int(time.time() * 1000),
                            error=f"outputs of {len(payload)} bytes exceed the result limit "
                                  f"of {self.settings.bus.max_message_bytes} bytes")
            payload = encode(result)
        try:
            await self._publish_retrying(self._topics.results, rec.key, payload, headers)
        except BusError as exc:
            # Not marked handled: a later member redelivers it.
            log.error("result not published", extra={"subtask_id": req.subtask_id,
                                                      "error": str(exc)})
            return
        state = type(result).__name__.lower()
        counter = self._results_by_state.get(state)
        if counter is None:
            counter = self._results_by_state[state] = self._metrics.results.labels(state)
        counter.inc()
        self._handled += 1
        self._final_event(req, result, headers)
        # One line per subtask, tied to its trace (the traceparent ingest received);
        # its fields are built only when the line is logged.
        level = logging.DEBUG if isinstance(result, Succeeded) else logging.INFO
        if log.isEnabledFor(level):
            log.log(level, "subtask %s", state,
                    extra={"subtask_id": req.subtask_id, "task_id": req.task_id,
                           "model": f"{req.model.name}:{req.model.version}", "state": state,
                           "runner_id": self.settings.runner_id, **log_fields(traceparent)})
        record_span("inferq.runner.handle", traceparent, start_ns, time.time_ns(),
                    {"inferq.subtask_id": req.subtask_id, "inferq.state": state})
        self._finished(tp, rec.offset)

    def _finished(self, tp: tuple[str, int], offset: int) -> None:
        self._commits.finished(tp, offset)

    def _final_event(self, req: InferenceRequest, result: SubtaskResult,
                     headers: Headers) -> None:
        """The lifecycle's last event on ``events``, once the result is acknowledged."""
        event = SubtaskEvent(
            subtask_id=req.subtask_id, task_id=req.task_id, account_id=req.account_id,
            kind=final_state(result), at_ms=result.finished_at_ms or int(time.time() * 1000),
            body=_json.encode(final_event_body(req.subtask_id, result)))
        try:
            self._bus.publish_soon(self._topics.events, req.subtask_id.encode(), encode(event),
                                   headers)
        except BusError:
            pass  # lifecycle events are best effort; the result is not

    async def _publish_retrying(self, topic: str, key: bytes | None, value: bytes,
                                headers: Headers) -> None:
        # The first try goes straight to the bus: building a retry loop costs more than
        # the embedded bus's whole publish, and almost every publish succeeds first time.
        try:
            await self._bus.publish(topic, key, value, headers)
            return
        except BusError as exc:
            log.warning("publish to %s failed, retrying: %s", topic, exc)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, BusError)),
            stop=stop_after_attempt(4), wait=wait_random_exponential(0.05, max=2), reraise=True,
        ):
            with attempt:
                await self._bus.publish(topic, key, value, headers)

    async def _undecodable(self, rec: Record, error: str) -> None:
        log.error("undecodable request", extra={"offset": rec.offset, "error": error})
        headers = (("error", error.encode()[:1000]), ("source-topic", rec.topic.encode()),
                   ("source-offset", str(rec.offset).encode()))
        try:
            await self._publish_retrying(self._topics.deadletter, rec.key, rec.value or b"",
                                         headers)
            ids = _ids_decoder.decode(rec.value or b"")
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        except BusError as exc:
            log.error("dead-letter publish failed: %s", exc)
            return
        failed = Failed(subtask_id=ids.subtask_id, task_id=ids.task_id,
                        account_id=ids.account_id, runner_id=self.settings.runner_id,
                        finished_at_ms=int(time.time() * 1000),
                        error=f"the request could not be decoded: {error}")
        try:
            await self._publish_retrying(self._topics.results, rec.key, encode(failed), ())
        except BusError:
            pass

    def _limits(self, req: InferenceRequest) -> BatchLimits | None:
        """The request's own batching limits (from its task or model), if it has any."""
        if req.max_batch_size <= 0 and req.max_queue_delay_ms < 0:
            return None
        d = self._batcher.defaults
        try:
            return BatchLimits(
                req.max_batch_size if req.max_batch_size > 0 else d.max_batch_size,
                req.max_queue_delay_ms / 1000 if req.max_queue_delay_ms >= 0
                else d.max_queue_delay_s)
        except ValueError:
            return None  # out of range: the runner's own limits hold

    async def _process(self, req: InferenceRequest, headers: Headers) -> SubtaskResult:
        assert self._cache is not None
        now_us = time.time_ns() // 1000
        now_ms = now_us // 1000
        common: dict[str, Any] = {"subtask_id": req.subtask_id, "task_id": req.task_id,
                                  "account_id": req.account_id,
                                  "runner_id": self.settings.runner_id,
                                  "webhook": req.webhook}
        queued_ms = _queued_ms(req, now_us)
        self._metrics.queued.observe(queued_ms / 1000)
        if self._control.is_cancelled(req.subtask_id):
            return Cancelled(**common, finished_at_ms=now_ms,
                             timings=Timings(queued_ms=queued_ms),
                             error="cancelled before it ran")
        if req.deadline_ms and now_ms > req.deadline_ms:
            return Expired(**common, finished_at_ms=now_ms,
                           timings=Timings(queued_ms=queued_ms),
                           error=f"deadline exceeded: the request waited {queued_ms:.0f} ms "
                                 "in the queue and was not run")
        event = SubtaskEvent(subtask_id=req.subtask_id, task_id=req.task_id,
                             account_id=req.account_id, kind="running", at_ms=now_ms,
                             message=self.settings.runner_id)
        try:
            self._bus.publish_soon(self._topics.events, req.subtask_id.encode(), encode(event),
                                   headers)
        except BusError:
            pass  # lifecycle events are best effort; the result is not
        fetch_ms = 0.0
        sha = req.model.sha256
        self._batcher.announce(sha)  # lets a forming batch wait for this one
        announced = True
        try:
            if req.url_inputs:
                t0 = time.perf_counter()
                arrays = await asyncio.gather(*(self._fetcher.fetch(u.url)
                                                for u in req.url_inputs))
                fetched = {u.name: a for u, a in zip(req.url_inputs, arrays, strict=True)}
                fetch_ms = (time.perf_counter() - t0) * 1000
                self._metrics.fetch.observe(fetch_ms / 1000)
            else:
                fetched = {}
            model = await self._cache.get(req.model, max_batch=req.max_batch_size)
            feeds = build_feeds(model, req.inputs, fetched)
            names = output_names(model, req.outputs)
            self._batcher.retract(sha)
            announced = False
            if self._control.is_cancelled(req.subtask_id):  # arrived while fetching
                raise BatchCancelled("cancelled before it ran")
            ran = await self._batcher.run(
                model, feeds, names, limits=self._limits(req),
                deadline_s=req.deadline_ms / 1000 if req.deadline_ms else None,
                cancel_id=req.subtask_id)
            outputs = encode_outputs(names, ran.outputs)
        except BatchCancelled as exc:
            return Cancelled(**common, finished_at_ms=int(time.time() * 1000), error=str(exc),
                             timings=Timings(queued_ms=queued_ms, fetch_ms=fetch_ms))
        except BatchExpired as exc:
            return Expired(**common, finished_at_ms=int(time.time() * 1000), error=str(exc),
                           timings=Timings(queued_ms=queued_ms, fetch_ms=fetch_ms))
        except RunnerError as exc:
            return Failed(**common, finished_at_ms=int(time.time() * 1000), error=str(exc),
                          timings=Timings(queued_ms=queued_ms, fetch_ms=fetch_ms))
        except Exception as exc:
            log.exception("runner failure", extra={"subtask_id": req.subtask_id})
            return Failed(**common, finished_at_ms=int(time.time() * 1000),
                          error=f"internal runner error: {type(exc).__name__}")
        finally:
            if announced:
                self._batcher.retract(sha)
        self._metrics.inference.observe(ran.inference_ms / 1000)
        self._metrics.batch_wait.observe(ran.batch_wait_ms / 1000)
        self._metrics.batch_size.observe(ran.batch_size)
        end_us = time.time_ns() // 1000
        return Succeeded(**common, finished_at_ms=end_us // 1000, outputs=outputs,
                         timings=Timings(queued_ms=queued_ms, fetch_ms=fetch_ms,
                                         inference_ms=ran.inference_ms,
                                         batch_size=ran.batch_size,
                                         batch_wait_ms=ran.batch_wait_ms,
                                         total_ms=queued_ms + (end_us - now_us) / 1000))

    # heartbeats ------------------------------------------------------------
    def heartbeat(self) -> Heartbeat:
        return Heartbeat(runner_id=self.settings.runner_id, host=socket.gethostname(),
                         device=device_of(self.providers), providers=tuple(self.providers),
                         models_loaded=tuple(self._cache.loaded if self._cache else ()),
                         models_loading=tuple(self._cache.loading if self._cache else ()),
                         in_flight=len(self._tasks), at_ms=int(time.time() * 1000),
                         state="draining" if self._state == "draining" else "running")

    def _loads_changed(self) -> None:
        """A model began or finished loading (a second for a large CPU model, minutes
        for a TensorRT build): say so in a heartbeat now, not at the next beat. Preloads
        come before the runner joins its group and beats at all; they log instead."""
        if not self.started.is_set() or self._stopped:
            return
        try:
            self._bus.publish_soon(self._topics.runners, self.settings.runner_id.encode(),
                                   encode(self.heartbeat()), MESSAGE_HEADERS)
        except BusError as exc:
            log.warning("heartbeat failed: %s", exc)

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await self._bus.publish(self._topics.runners, self.settings.runner_id.encode(),
                                        encode(self.heartbeat()), MESSAGE_HEADERS)
            except BusError as exc:
                log.warning("heartbeat failed: %s", exc)
            await asyncio.sleep(self.settings.heartbeat_s)
