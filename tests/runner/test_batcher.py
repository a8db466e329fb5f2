"""The dynamic batcher: alone on the executor, and inside a runner on both buses."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import runner.batcher as batcher_module
from runner.batcher import BatchCancelled, Batcher, BatchExpired, BatchLimits, _run_one
from runner.errors import ModelRunError
from runner.models import LoadedModel, ModelCache, _specs, bind_device, unbatchable_because
from runner.settings import RunnerSettings
from schemas.env import SettingError
from schemas.messages import (
    Expired,
    Failed,
    InferenceRequest,
    ModelRef,
    Succeeded,
    encode,
)
from schemas.registry import TensorSpec
from schemas.tensors import decode_tensor, encode_array
from tests.onnx_models import _model, add_model, loop_model
from tests.runner.on_bus import collect, runner_on_bus


def gather_model() -> bytes:
    """y = table[idx]: idx int64 [-1, 2] -> y float32 [-1, 2, 3]; an index >= 10 fails."""
    table = np.arange(30, dtype=np.float32).reshape(10, 3)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "idx"], ["y"], axis=0)], "gather",
        [helper.make_tensor_value_info("idx", TensorProto.INT64, ["n", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2, 3])],
        initializer=[numpy_helper.from_array(table, "table")],
    )
    return _model(graph)


def fixed_model() -> bytes:
    """y = x + 1 on a fixed [2, 4]: not batchable."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])], "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        initializer=[numpy_helper.from_array(np.ones((4,), np.float32), "one")],
    )
    return _model(graph)


def transpose_model(width: int | str = 4, first: str = "n") -> bytes:
    """y = x transposed: x [first, width] -> y [width, first]; its rows are x's columns."""
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0])], "transpose",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [first, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [width, first])],
    )
    return _model(graph)


class CountingSession:
    """A real session that remembers the batch size of every run, plain or through IO
    binding (counted when its first input is bound, as a plain run counts its feeds)."""

    def __init__(self, data: bytes) -> None:
        self.inner = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        self.rows: list[int] = []

    def run(self, names: list[str] | None, feeds: dict[str, Any], opts: Any = None
            ) -> list[Any]:
        self.rows.append(next(iter(feeds.values())).shape[0])
        out: list[Any] = self.inner.run(names, feeds, opts)
        return out

    def io_binding(self) -> CountingBinding:
        return CountingBinding(self, self.inner.io_binding())

    def run_with_iobinding(self, binding: CountingBinding, opts: Any = None) -> None:
        self.inner.run_with_iobinding(binding.inner, opts)


class CountingBinding:
    def __init__(self, session: CountingSession, inner: Any) -> None:
        self.session, self.inner, self.counted = session, inner, False

    def bind_cpu_input(self, name: str, array: np.ndarray[Any, Any]) -> None:
        if not self.counted:
            self.session.rows.append(array.shape[0])
            self.counted = True
        self.inner.bind_cpu_input(name, array)

    def __getattr__(self, name: str) -> Any:  # bind_output, copy_outputs_to_cpu
        return getattr(self.inner, name)


def loaded(data: bytes, bind_device: str | None = None
           ) -> tuple[LoadedModel, CountingSession]:
    """A model on a counting session; ``bind_device`` "cpu" runs it through IO binding
    with outputs on the host (the one device CI has; a GPU runner binds on "cuda")."""
    session = CountingSession(data)
    sha = hashlib.sha256(data).hexdigest()
    model = LoadedModel(
        ref=ModelRef(name="m", version="1", uri="file:///m.onnx", sha256=sha),
        session=session,  # type: ignore[arg-type]
        inputs={s.name: s for s in _specs(session.inner.get_inputs())},
        outputs=tuple(o.name for o in session.inner.get_outputs()),
        providers=("CPUExecutionProvider",),
        bind_device=bind_device,
        batchable=unbatchable_because(session.inner.get_inputs(),
                                      session.inner.get_outputs()) is None,
    )
    return model, session


#: Run the batching tests both ways: plain ``session.run`` and through IO binding.
BOTH_WAYS = pytest.mark.parametrize("bind", [None, "cpu"], ids=["run", "io_binding"])


class BlockingSession:
    """Holds the executor thread until released: the runner is busy."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()

    def run(self, names: list[str] | None, feeds: dict[str, Any], opts: Any = None
            ) -> list[Any]:
        self.started.set()
        self.release.wait(10)
        return [feeds["x"]]


@asynccontextmanager
async def blocked(b: Batcher) -> AsyncIterator[None]:
    """Keeps the batcher's only slot busy until the block ends."""
    session = BlockingSession()
    model = LoadedModel(ref=ModelRef(name="block", version="1", uri="", sha256="block"),
                        session=session,  # type: ignore[arg-type]
                        inputs={}, outputs=("y",), providers=())
    run = asyncio.create_task(b.run(model, {"x": np.zeros((1, 1), np.float32)}, ["y"]))
    for _ in range(1000):
        if session.started.is_set():
            break
        await asyncio.sleep(0.005)
    assert session.started.is_set()
    try:
        yield
    finally:
        session.release.set()
        await run


def x(i: int, rows: int = 1) -> dict[str, Any]:
    return {"x": np.full((rows, 4), float(i), np.float32)}


@BOTH_WAYS
async def test_lone_request_runs_at_once_as_a_batch_of_one(bind: str | None) -> None:
    model, session = loaded(add_model(), bind)
    with ThreadPoolExecutor(1) as ex:
        # A long window must not be applied to a lone request on an idle runner.
        b = Batcher(ex, slots=1, defaults=BatchLimits(32, 5.0))
        for i in range(3):
            t0 = time.perf_counter()
            out = await b.run(model, x(i), ["y"])
            assert time.perf_counter() - t0 < 2.0
            assert out.batch_size == 1
            np.testing.assert_array_equal(out.outputs[0], np.full((1, 4), i + 1.0))
    assert session.rows == [1, 1, 1]


@BOTH_WAYS
async def test_requests_queued_while_busy_form_batches_and_split_back(bind: str | None) -> None:
    model, session = loaded(add_model(), bind)
    with ThreadPoolExecutor(1) as ex:
        b = Batcher(ex, slots=1, defaults=BatchLimits(8, 0.002))
        async with blocked(b):
            # 20 requests of 1 or 2 rows arrive while the executor is busy.
            tasks = [asyncio.create_task(b.run(model, x(i, 1 + i % 2), ["y"]))
                     for i in range(20)]
            for _ in range(200):
                if b.queued == 20:
                    break
                await asyncio.sleep(0.005)
            assert b.queued == 20
        outs = await asyncio.gather(*tasks)
    for i, out in enumerate(outs):
        np.testing.assert_array_equal(out.outputs[0], np.full((1 + i % 2, 4), i + 1.0))
        assert out.batch_size > 1
    assert all(r <= 8 for r in session.rows)  # the limit counts rows
    assert sum(session.rows) == 30 and len(session.rows) < 20


class CountingExecutor(ThreadPoolExecutor):
    """Counts the runs handed to it."""

    submitted = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


@pytest.mark.parametrize("counts_arrivals", [True, False])
async def test_a_request_nothing_else_can_join_is_dispatched_in_its_own_tick(
        counts_arrivals: bool) -> None:
    model, session = loaded(add_model())
    with CountingExecutor(1) as ex:
        b = Batcher(ex, slots=1, defaults=BatchLimits(32, 0.002),
                    counts_arrivals=counts_arrivals)
        run = asyncio.ensure_future(b.run(model, x(1), ["y"]))
        await asyncio.sleep(0)  # the run's first step comes first, then this
        # Counting arrivals, nothing is expected: handed over at once; else a tick later.
        assert ex.submitted == (1 if counts_arrivals else 0)
        out = await run
    np.testing.assert_array_equal(out.outputs[0], np.full((1, 4), 2.0))
    assert session.rows == [1]


@pytest.mark.parametrize("counts_arrivals", [True, False])
async def test_a_run_made_on_the_loop_is_answered_before_the_loop_turns(
        counts_arrivals: bool) -> None:
    model, session = loaded(add_model())
    with ThreadPoolExecutor(1) as ex:
        # Generous bound: a loaded CI box must not turn a ~20 us Add into 5 ms.
        b = Batcher(ex, slots=1, defaults=BatchLimits(32, 0.002), inline_below_s=0.005,
                    counts_arrivals=counts_arrivals)
        await b.run(model, x(0), ["y"])  # learns the pace (on the executor)
        turns = 0

        def turned() -> None:
            nonlocal turns
            turns += 1

        asyncio.get_running_loop().call_soon(turned)
        out = await b.run(model, x(1), ["y"])
        assert turns == (0 if counts_arrivals else 1)
    np.testing.assert_array_equal(out.outputs[0], np.full((1, 4), 2.0))
    assert session.rows == [1, 1]


async def test_requests_still_expected_keep_the_tick_and_share_a_batch() -> None:
    model, session = loaded(add_model())

    async def handled(i: int) -> Any:
        b.arrived()  # as the runner does when it starts on a fetched record
        return await b.run(model, x(i), ["y"])

    with ThreadPoolExecutor(1) as ex:
        b = Batcher(ex, slots=1, defaults=BatchLimits(32, 0.002), counts_arrivals=True)
        b.expect(3)  # three records fetched together
        outs = await asyncio.gather(*(handled(i) for i in range(3)))
        assert b.expected == 0
        # Not expected, each would have found nothing to wait for and run alone.
        alone = [await b.run(model, x(i), ["y"]) for i in range(2)]
    assert [o.batch_size for o in outs] == [3, 3, 3] and session.rows == [3, 1, 1]
    for i, out in enumerate(outs):
        np.testing.assert_array_equal(out.outputs[0], np.full((1, 4), i + 1.0))
    assert [o.batch_size for o in alone] == [1, 1]


async def test_the_last_of_a_group_waits_the_tick_so_its_batch_is_answered_together(
        ) -> None:
    model, _ = loaded(add_model())
    answered: list[int] = []

    async def handled(i: int) -> None:
        b.arrived()
        await b.run(model, x(i), ["y"])
        answered.append(i)

    with ThreadPoolExecutor(1) as ex:
        # Runs on the loop (generous bound for a loaded CI box), so a request dispatched
        # as it is submitted would be answered before its handler yields.
        b = Batcher(ex, slots=1, defaults=BatchLimits(32, 0.002), inline_below_s=0.005,
                    counts_arrivals=True)
        await b.run(model, x(0), ["y"])  # learns the pace (on the executor)
        b.expect(3)
        await asyncio.gather(*(handled(i) for i in range(3)))
    # Dispatched by the last one's submit, the last would be answered a tick before the
    # other two: [2, 0, 1].
    assert answered == [0, 1, 2]


async def test_different_shapes_and_unbatchable_models_run_apart() -> None:
    model, session = loaded(add_model(4))
    fixed, fsession = loaded(fixed_model())
    with ThreadPoolExecutor(1) as ex:
        b = Batcher(ex, slots=1, defaults=BatchLimits(32, 0.002))
        async with blocked(b):
            a1 = asyncio.create_task(b.run(model, x(1), ["y"]))
            a2 = asyncio.create_task(b.run(model, x(2), ["y"]))
            f1 = asyncio.create_task(b.run(fixed, x(3, 2), ["y"]))
            f2 = asyncio.create_task(b.run(fixed, x(4, 2), ["y"]))
            await asyncio.sleep(0.05)
        outs = await asyncio.gather(a1, a2, f1, f2)
    assert [o.batch_size for o in outs] == [2, 2, 1, 1]
    assert session.rows == [2] and fsession.rows == [2, 2]
    np.testing.assert_array_equal(outs[3].outputs[0], np.full((2, 4), 5.0))


async def test_a_model_whose_output_rows_do_not_follow_its_inputs_runs_each_alone() -> None:
    # Four one-row requests batched would give a [4, 4] transpose, which splits into four
    # rows without complaint, each the wrong answer; each must run alone.
    model, session = loaded(transpose_model())
    assert not model.batchable
    with ThreadPoolExecutor(1) as ex:
        b = Batcher(ex, slots=1, defaults=BatchLimits(32, 0.002))
        async with blocked(b):
            tasks = [asyncio.create_task(b.run(model, {"x": np.arange(4, dtype=np.float32)
                                                          .reshape(1, 4) + 10 * i}, ["y"]))
                     for i in range(4)]
            await asyncio.sleep(0.05)
        outs = await asyncio.gather(*tasks)
    for i, out in enumerate(outs):
        want = (np.arange(4, dtype=np.float32).reshape(1, 4) + 10 * i).T
        np.testing.assert_array_equal(out.outputs[0], want)
        assert out.batch_size == 1
    assert session.rows == [1, 1, 1, 1]


def test_outputs_whose_rows_may_not_follow_the_inputs_are_named() -> None:
    def because(data: bytes) -> str | None:
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        return unbatchable_because(session.get_inputs(), session.get_outputs())

    assert because(transpose_model()) == "output 'y' has a fixed first dimension (4)"
    # x [n, m] -> y [m, n]: m could equal the batch's rows by chance.
    assert because(transpose_model("m")) == (
        "output 'y' has first dimension 'm', not its inputs' 'n'")
    assert because(add_model()) is None
    # A name a converter made up says nothing: left to the split's check.
    assert because(transpose_model("unk__7")) is None


async def test_the_model_cache_marks_fixed_output_rows_unbatchable(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="runner.models")
    with ThreadPoolExecutor(1) as ex:
        for data, want in ((transpose_model(), False), (add_model(), True)):
            path = tmp_path / "m.onnx"
            path.write_bytes(data)
            ref = ModelRef(name="m", version="1", uri=path.as_uri(),
                           sha256=hashlib.sha256(data).hexdigest())
            cache = ModelCache(providers=["CPUExecutionProvider"], cache_dir=tmp_path / "c",
                               max_models=2, intra_op_threads=1, executor=ex)
            assert (await cache.get(ref)).batchable is want
    notes = [r.getMessage() for r in caplog.records if "not batched" in r.getMessage()]
    assert notes == ["model not batched: output 'y' has a fixed first dimension (4)"]


async def test_requests_under_different_limits_never_share_a_batch() -> None:
    # Tasks of one model may set their own limits: a request whose limit is 1 runs alone
    # even when it queues among requests whose limit allows 32, which still batch.
    model, session = loaded(add_model())
    alone, two = BatchLimits(1, 0.002), BatchLimits(2, 0.002)
    with ThreadPoolExecutor(1) as ex:
        b = Batcher(ex, slots=1, defaults=BatchLimits(32, 0.002))
        async with blocked(b):
            kinds = [None, alone, two] * 4
            tasks = [asyncio.create_task(b.run(model, x(i), ["y"], limits=kinds[i]))
                     for i in range(len(kinds))]
            for _ in range(200):
                if b.queued == len(kinds):
                    break
                await asyncio.sleep(0.005)
            assert b.queued == len(kinds)
        outs = await asyncio.gather(*tasks)
    for i, out in enumerate(outs):
        np.testing.assert_array_equal(out.outputs[0], np.full((1, 4), i + 1.0))
    sizes = {k: [o.batch_size for o, kk in zip(outs, kinds, strict=True) if kk is k]
             for k in (None, alone, two)}
    assert sizes[None] == [4] * 4 and sizes[alone] == [1] * 4 and sizes[two] == [2] * 4
    assert sorted(session.rows) == [1, 1, 1, 1, 2, 2, 4]


@BOTH_WAYS
async def test_a_bad_request_fails_alone(bind: str | None) -> None:
    model, session = loaded(gather_model(), bind)
    with ThreadPoolExecutor(1) as ex:
        b = Batcher(ex, slots=1, defaults=BatchLimits(32, 0.002))
        async with blocked(b):
            tasks = [asyncio.create_task(b.run(
                model, {"idx": np.array([[i, 99 if i == 2 else i]], np.int64)}, ["y"]))
                for i in range(5)]
            await asyncio.sleep(0.05)
        outs = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(outs[2], ModelRunError)
    for i in (0, 1, 3, 4):
        out = outs[i]
        assert not isinstance(out, BaseException)
        np.testing.assert_array_equal(out.outputs[0][0, 0], np.arange(i * 3, i * 3 + 3))
        assert out.batch_size == 1  # it was retried on its own
    assert session.rows[0] == 5 and session.rows[1:] == [1] * 5


async def test_deadline_passing_in_the_queue_expires_without_running() -> None:
    model, session = loaded(add_model())
    with ThreadPoolExecutor(1) as ex:
        b = Batcher(ex, slots=1, defaults=BatchLimits(32, 0.002))
        async with blocked(b):
            soon = asyncio.create_task(b.run(model, x(1), ["y"], deadline_s=time.time() + 0.1))
            later = asyncio.create_task(b.run(model, x(2), ["y"], deadline_s=time.time() + 60))
            # Answered while the executor is still busy: the timer, not the dispatch.
            with pytest.raises(BatchExpired):
                await asyncio.wait_for(soon, 5)
            assert not later.done()
        out = await later
        with pytest.raises(BatchExpired):
            await b.run(model, x(3), ["y"], deadline_s=time.time() - 1)
    assert out.batch_size == 1 and session.rows == [1]


async def test_queue_delay_waits_only_for_announced_requests() -> None:
    model, session = loaded(add_model())
    with ThreadPoolExecutor(1) as ex:
        b = Batcher(ex, slots=1, defaults=BatchLimits(32, 0.5))
        b.announce(model.ref.sha256)  # one more is fetching its inputs
        first = asyncio.create_task(b.run(model, x(1), ["y"]))
        await asyncio.sleep(0.05)
        assert not first.done() and b.queued == 1
        b.retract(model.ref.sha256)
        second = await b.run(model, x(2), ["y"])
        assert (await first).batch_size == 2 and second.batch_size == 2
        # An announced request that never comes delays the batch by the window at most.
        b.announce(model.ref.sha256)
        t0 = time.perf_counter()
        assert (await b.run(model, x(3), ["y"])).batch_size == 1
        assert 0.4 < time.perf_counter() - t0 < 5
    assert session.rows == [2, 1]


def test_limits_are_validated_up_front() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        BatchLimits(0, 0.002)
    with pytest.raises(ValueError, match="max_queue_delay"):
        BatchLimits(8, -1)
    with ThreadPoolExecutor(1) as ex, pytest.raises(ValueError, match="slots"):
        Batcher(ex, slots=0, defaults=BatchLimits())
    with ThreadPoolExecutor(1) as ex, pytest.raises(ValueError, match="inline_limit_s"):
        Batcher(ex, slots=1, defaults=BatchLimits(), inline_below_s=0.05, inline_limit_s=0.02)


# --- inside a runner, on both buses -------------------------------------------------

def request(model: ModelRef, i: int, idx: int | None = None, deadline_ms: int = 0
            ) -> InferenceRequest:
    value = np.array([[i, i if idx is None else idx]], np.int64)
    return InferenceRequest(subtask_id=str(uuid.uuid4()), task_id="t", account_id="a",
                            model=model, inputs=(encode_array("idx", value),),
                            created_at_ms=int(time.time() * 1000), deadline_ms=deadline_ms)


def gather_ref(tmp_path: Path) -> ModelRef:
    path = tmp_path / "gather.onnx"
    path.write_bytes(gather_model())
    return ModelRef(name="g", version="1", uri=path.as_uri(),
                    sha256=hashlib.sha256(path.read_bytes()).hexdigest())


async def test_runner_batches_under_load_not_when_idle(kafka_bootstrap: str | None,
                                                       tmp_path: Path) -> None:
    ref = gather_ref(tmp_path)
    async with runner_on_bus(kafka_bootstrap, tmp_path) as on:
        bus, topics = on.bus, on.topics
        # Idle: one at a time, each waits for its result -> batches of one.
        for i in range(3):
            req = request(ref, i)
            await bus.publish(topics.requests, req.subtask_id.encode(), encode(req))
            res = (await collect(bus, topics.results, {req.subtask_id}))[req.subtask_id]
            assert isinstance(res, Succeeded) and res.timings.batch_size == 1
        # Load: 24 at once (one already expired) -> shared runs.
        reqs = [request(ref, i % 10, deadline_ms=1 if i == 7 else 0) for i in range(24)]
        # Then 6 at once, one of them bad: it fails, its neighbours do not.
        bad = [request(ref, i, idx=99 if i == 2 else None) for i in range(6)]
        for group in (reqs, bad):
            for r in group:
                bus.publish_soon(topics.requests, r.subtask_id.encode(), encode(r))
            got = await collect(bus, topics.results, {r.subtask_id for r in group})
            if group is reqs:
                loaded_results = got
        # Every record fetched was counted as it arrived: none is still expected
        # (one would hold back the batcher's at-once dispatch for good).
        assert on.runner.batcher.expected == 0
    sizes = []
    for i, r in enumerate(reqs):
        res = loaded_results[r.subtask_id]
        if i == 7:
            assert isinstance(res, Expired)
            continue
        assert isinstance(res, Succeeded), res
        y = decode_tensor(res.outputs[0])
        assert y.shape == (1, 2, 3)
        np.testing.assert_array_equal(y[0, 0], np.arange(3) + 3 * (i % 10))
        sizes.append(res.timings.batch_size)
        assert res.timings.batch_wait_ms >= 0 and res.timings.inference_ms > 0
    assert max(sizes) > 1
    for i, r in enumerate(bad):
        res = got[r.subtask_id]
        if i == 2:
            assert isinstance(res, Failed) and "model error" in res.error
        else:
            assert isinstance(res, Succeeded), res
            np.testing.assert_array_equal(decode_tensor(res.outputs[0])[0, 0],
                                          np.arange(3) + 3 * i)
    count = on.metrics.get_sample_value("inferq_runner_batch_size_count")
    ones = on.metrics.get_sample_value("inferq_runner_batch_size_bucket", {"le": "1.0"})
    assert count == 3 + 23 + 5 and ones is not None and ones < count


async def test_full_runner_resumes_as_soon_as_a_request_finishes(kafka_bootstrap: str | None,
                                                                 tmp_path: Path) -> None:
    """With one request in flight at most, each finished request lets the next in at
    once: 30 requests must not each wait out the paused consumer's poll (0.2 s)."""
    ref = gather_ref(tmp_path)
    async with runner_on_bus(kafka_bootstrap, tmp_path, max_in_flight=1) as on:
        bus, topics = on.bus, on.topics
        warm = request(ref, 0)
        await bus.publish(topics.requests, warm.subtask_id.encode(), encode(warm))
        await collect(bus, topics.results, {warm.subtask_id})
        reqs = [request(ref, i % 10) for i in range(30)]
        t0 = time.monotonic()
        for r in reqs:
            bus.publish_soon(topics.requests, r.subtask_id.encode(), encode(r))
        got = await collect(bus, topics.results, {r.subtask_id for r in reqs})
        elapsed = time.monotonic() - t0
    assert all(isinstance(res, Succeeded) for res in got.values())
    assert elapsed < 4.0, f"30 requests took {elapsed:.1f} s through a full runner"


class PacedSession(CountingSession):
    """A real session that records which thread ran it and can be made slow: ``delay_s``
    of computing (CPU time, as a slow model spends it) or ``wait_s`` of waiting (as a
    thread waits for the GIL after ORT returned, or on a GPU)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.threads: list[int] = []
        self.delay_s = 0.0
        self.wait_s = 0.0

    def run(self, names: list[str] | None, feeds: dict[str, Any], opts: Any = None
            ) -> list[Any]:
        self.threads.append(threading.get_ident())
        until = time.thread_time() + self.delay_s
        while time.thread_time() < until:
            pass
        time.sleep(self.wait_s)
        return super().run(names, feeds, opts)


def paced(providers: tuple[str, ...] | None = None, data: bytes | None = None
          ) -> tuple[LoadedModel, PacedSession]:
    data = data or add_model()
    model, _ = loaded(data)
    session = PacedSession(data)
    return LoadedModel(ref=model.ref, session=session,  # type: ignore[arg-type]
                       inputs=model.inputs, outputs=model.outputs,
                       providers=providers or model.providers), session


async def test_fast_runs_move_onto_the_loop_and_slow_ones_stay_on_the_executor() -> None:
    model, session = paced()
    loop_thread = threading.get_ident()
    with ThreadPoolExecutor(1) as ex:
        # Generous bounds: a loaded CI box must not turn a ~20 µs Add into 5 ms.
        b = Batcher(ex, slots=1, defaults=BatchLimits(32, 0.002), inline_below_s=0.005)
        for i in range(4):
            out = await b.run(model, x(i), ["y"])
            np.testing.assert_array_equal(out.outputs[0], np.full((1, 4), i + 1.0))
        # The first run had no pace yet: executor. Then it is known to be fast: the loop.
        assert session.threads[0] != loop_thread
        assert session.threads[1:] == [loop_thread] * 3
        # It turns slow (20 ms a run): one run on the loop pays for the stale estimate,
        # then it goes back to the executor, where the loop keeps serving meanwhile.
        session.delay_s = 0.02
        for i in range(4):
            out = await b.run(model, x(i), ["y"])
            np.testing.assert_array_equal(out.outputs[0], np.full((1, 4), i + 1.0))
        assert session.threads[4] == loop_thread
        assert loop_thread not in session.threads[5:]


@pytest.mark.parametrize("device", ["cpu", "cuda"])
async def test_a_wait_after_an_executor_run_keeps_no_cpu_model_off_the_loop(device: str) -> None:
    """Under load an executor thread waits up to the switch interval (5 ms) for the GIL
    after ORT returns. Its run's pace is the CPU time it spent, so a fast model comes back
    to the loop at once. A GPU session's run waits on its device: its pace stays the time
    the run took, and it stays on the executor."""
    model, session = paced(("CUDAExecutionProvider", "CPUExecutionProvider")
                           if device == "cuda" else None)
    loop_thread = threading.get_ident()
    with ThreadPoolExecutor(1) as ex:
        b = Batcher(ex, slots=1, defaults=BatchLimits(32, 0.002), inline_below_s=0.005)
        session.wait_s = 0.03  # the first run, on the executor (no pace yet), waits 30 ms
        await b.run(model, x(0), ["y"])
        session.wait_s = 0.0
        for i in range(1, 4):
            out = await b.run(model, x(i), ["y"])
            np.testing.assert_array_equal(out.outputs[0], np.full((1, 4), i + 1.0))
    assert session.threads[0] != loop_thread
    if device == "cpu":
        assert session.threads[1:] == [loop_thread] * 3
    else:  # 30 ms taken for its pace: it comes down by a third a run, past 5 ms later
        assert loop_thread not in session.threads[1:]


@pytest.mark.parametrize("parked", [False, True], ids=["watching", "parked"])
async def test_an_inline_run_that_outlives_its_limit_is_cut_off_and_run_in_the_executor(
    parked: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A Loop whose trip count is an input: quick runs teach a pace that puts it on the
    loop, where a long one would hold every request of the process for as long as it
    takes. It is terminated once past the limit and run in the executor, and the loop is
    never held much longer than the limit; also when it comes after a quiet spell, in
    which the watch thread parked."""
    if parked:  # else the watch parks only after a second without a run (default)
        monkeypatch.setattr(batcher_module, "_WATCH_PARKS_AFTER_S", 0.1)
    data = loop_model(32)
    plain, _ = loaded(data)
    session = PacedSession(data)
    model = LoadedModel(ref=plain.ref, session=session,  # type: ignore[arg-type]
                        inputs=plain.inputs, outputs=plain.outputs, providers=plain.providers)
    loop_thread = threading.get_ident()
    quick = {"x": np.array([2.0], np.float32), "steps": np.array(1, np.int64)}
    endless = {"x": np.array([2.0], np.float32), "steps": np.array(10**12, np.int64)}
    limit_s = 0.05
    with ThreadPoolExecutor(1) as ex:
        b = Batcher(ex, slots=1, defaults=BatchLimits(32, 0.002), inline_below_s=0.005,
                    inline_limit_s=limit_s)
        for _ in range(3):
            assert (await b.run(model, quick, ["y"])).outputs[0].tolist() == [[2.0]]
        assert session.threads[1:] == [loop_thread] * 2

        gaps: list[float] = []
        ticking = True

        async def tick() -> None:  # how long the loop is held between its turns
            last = time.perf_counter()
            while ticking:
                await asyncio.sleep(0.002)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.3 if parked else 0.02)
        assert b._watch._parked is parked
        run = asyncio.create_task(b.run(model, endless, ["y"], cancel_id="endless"))
        for _ in range(500):
            if len(session.threads) >= 5:
                break
            await asyncio.sleep(0.01)
        # Tried on the loop (its pace said so), then handed to the executor thread.
        assert session.threads[3] == loop_thread and session.threads[4] != loop_thread
        await asyncio.sleep(0.1)
        assert not run.done()  # still running, in the executor: the loop turns meanwhile
        assert b.cancel("endless")
        with pytest.raises(BatchCancelled, match="terminated"):
            await asyncio.wait_for(run, 10)
        ticking = False
        await ticker
        assert max(gaps) < 1.5 * limit_s + 0.1, max(gaps)
        assert [r.getMessage() for r in caplog.records if r.name == "runner.batcher"] == [
            "a run of m:1 on the event loop outlived 50 ms: terminated, and run again in "
            "the executor"]
        # Its pace is now what the cut-off run cost: the next quick run is not made on
        # the loop (it comes back there as quick runs bring the pace down).
        assert (await b.run(model, quick, ["y"])).outputs[0].tolist() == [[2.0]]
        assert session.threads[-1] != loop_thread
        b.close()


async def test_a_pace_is_kept_per_input_shape() -> None:
    """A sequence model's time per row grows with its sequence: what short rows taught
    must not send a long row to the loop unmeasured."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "seq"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "seq"])])
    model, session = paced(data=_model(graph))
    loop_thread = threading.get_ident()
    with ThreadPoolExecutor(1) as ex:
        b = Batcher(ex, slots=1, defaults=BatchLimits(32, 0.002), inline_below_s=0.005)
        for seq in (4, 4, 4, 512, 4):
            feeds = {"x": np.ones((1, seq), np.float32)}
            out = await b.run(model, feeds, ["y"])
            assert out.outputs[0].shape == (1, seq)
    # Short rows: the executor, then the loop; the first long row, never seen: executor.
    assert session.threads[0] != loop_thread
    assert session.threads[1:3] == [loop_thread] * 2
    assert session.threads[3] != loop_thread
    assert session.threads[4] == loop_thread


def test_the_inline_limit_is_a_setting_above_the_inline_bound() -> None:
    assert RunnerSettings.from_env({}).inline_limit_ms == 20.0
    assert RunnerSettings.from_env({"INFERQ_INLINE_LIMIT_MS": "5"}).inline_limit_ms == 5.0
    with pytest.raises(SettingError, match=r"INFERQ_INLINE_LIMIT_MS=0.5 must exceed "
                                           r"INFERQ_INLINE_RUN_US=800 \(in ms: 0.8\)"):
        RunnerSettings.from_env({"INFERQ_INLINE_LIMIT_MS": "0.5", "INFERQ_INLINE_RUN_US": "800"})
    # No inline runs, no limit to keep.
    assert RunnerSettings.from_env({"INFERQ_INLINE_LIMIT_MS": "0.5",
                                    "INFERQ_INLINE_RUN_US": "0"}).inline_run_us == 0


async def test_without_an_inline_bound_every_run_goes_to_the_executor() -> None:
    model, session = paced()
    with ThreadPoolExecutor(1) as ex:
        b = Batcher(ex, slots=1, defaults=BatchLimits(32, 0.002))
        for i in range(3):
            await b.run(model, x(i), ["y"])
    assert threading.get_ident() not in session.threads and len(session.threads) == 3


# ---------------------------------------------------------------------------------------
# IO binding (the batching tests above run through it too: BOTH_WAYS)


async def test_io_binding_reads_a_strided_input_in_its_logical_order() -> None:
    model, session = loaded(add_model(), "cpu")
    strided = np.arange(8, dtype=np.float32).reshape(4, 2).T  # (2, 4), not contiguous
    with ThreadPoolExecutor(1) as ex:
        out = await Batcher(ex, slots=1, defaults=BatchLimits(8, 0.002)).run(
            model, {"x": strided}, ["y"])
    np.testing.assert_array_equal(out.outputs[0], strided + 1.0)
    assert session.rows == [2]


def test_io_binding_is_chosen_by_mode_and_provider() -> None:
    cuda = ("CUDAExecutionProvider", "CPUExecutionProvider")
    trt = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
    cpu = ("CPUExecutionProvider",)
    nums = [TensorSpec(name="x", dtype="float32", shape=(-1, 4))]
    text = [*nums, TensorSpec(name="s", dtype="string", shape=(-1,))]
    assert bind_device("auto", cuda, nums) == "cuda" and bind_device("auto", trt, nums) == "cuda"
    assert bind_device("auto", cpu, nums) is None  # session.run reads numpy in place there
    assert bind_device("on", cpu, nums) == "cpu" and bind_device("on", cuda, nums) == "cuda"
    assert bind_device("off", cuda, nums) is None
    assert bind_device("auto", cuda, text) is None  # string tensors stay on the host


def test_io_binding_setting_is_checked_by_name() -> None:
    assert RunnerSettings.from_env({}).io_binding == "auto"
    assert RunnerSettings.from_env({"INFERQ_IO_BINDING": " ON "}).io_binding == "on"
    with pytest.raises(SettingError, match=r"INFERQ_IO_BINDING='gpu' is not one of auto, on, off"):
        RunnerSettings.from_env({"INFERQ_IO_BINDING": "gpu"})


async def test_the_model_cache_loads_sessions_for_io_binding_when_told(tmp_path: Path) -> None:
    data = add_model()
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    ref = ModelRef(name="m", version="1", uri=path.as_uri(),
                   sha256=hashlib.sha256(data).hexdigest())
    with ThreadPoolExecutor(1) as ex:
        for mode, want in (("auto", None), ("on", "cpu"), ("off", None)):
            cache = ModelCache(providers=["CPUExecutionProvider"], cache_dir=tmp_path / "c",
                               max_models=1, intra_op_threads=1, executor=ex, io_binding=mode)
            model = await cache.get(ref)
            assert model.bind_device == want, mode
            out = await Batcher(ex, slots=1, defaults=BatchLimits(4, 0.002)).run(
                model, x(2), ["y"])
            np.testing.assert_array_equal(out.outputs[0], np.full((1, 4), 3.0))


def test_io_binding_honours_terminate_as_a_cancel_relies_on() -> None:
    model, _ = loaded(add_model(), "cpu")
    opts = ort.RunOptions()
    opts.terminate = True
    with pytest.raises(ModelRunError, match="terminate"):
        _run_one(model, ["y"], x(1), opts)
    assert _run_one(model, ["y"], x(1), ort.RunOptions())[0].tolist() == [[2.0] * 4]
