"""The dynamic batcher: requests for one model version and input signature share a run.

Design, and why:

- **No delay when idle.** A request that finds a free executor slot is dispatched on
  the next loop tick (``call_soon``), which costs microseconds and lets every record of
  the same fetch that is already being handled join it. Batches otherwise form from
  what queues while the executor is busy: when a slot frees, the oldest queue is taken
  whole, up to ``max_batch_size``. So one client sees batch-1 latency and 64 clients
  see full batches, with no window to tune.
- **Not even a tick when nothing can join.** A caller that counts its arrivals
  (``counts_arrivals``: ``expect`` for each request taken in, ``arrived`` as each starts
  being handled, as the runner does for each record it fetches) lets the batcher see
  when no other request can reach it in the current tick: none expected, none
  announced. A request submitted then into an empty batcher (nothing else queued)
  is dispatched at once, and a run the batcher makes on the loop
  (below) is answered before ``run`` first yields. The last of several submitted in
  one tick still waits for the tick: dispatched at once, it would be answered a tick
  before the rest of its batch, whose results then go out in two ticks, not one (tiny
  model at 8 clients: +12 to +17 % requests with the rule as it is; dispatching every
  request that nothing else can join, -4 to +4 %).
- **``max_queue_delay`` bounds the only deliberate wait.** When a slot is free and the
  queue is not full but more requests for the same model are already on their way
  (announced by the runner after decoding, still fetching their URL inputs), the batch
  waits for them, at most ``max_queue_delay`` from its oldest request's arrival.
- **Only batchable models are batched**: every input's first dimension must be dynamic
  in the graph, and no output's fixed or named other than the inputs' first (such an
  output's rows do not follow the requests': a transpose of 4 one-row requests has 4
  rows, which would split into answers mixing the requests' data;
  ``models.unbatchable_because``). Requests are grouped by model sha256, wanted
  outputs, every input's dtype and non-batch shape, and their limits (a task or model
  may set its own); anything else runs alone.
- **Outputs split back one to one** along axis 0 by each request's row count; an output
  whose first dimension does not match the batch's rows fails the batch.
- **A failing batch is retried per request**, in the same executor call, so a bad
  request fails alone and its neighbours still get their results.
- **Deadlines**: a request whose deadline passes while it is queued is answered with
  ``BatchExpired`` at once (a timer) and never run.
- **Bounded**: at most ``slots`` runs in the executor at once; the queue is bounded by
  ``max_queued`` (the runner's in-flight limit bounds it first).
- **Tiny runs stay on the loop.** Handing a run to an executor thread costs a thread
  wake-up, a future crossing threads and GIL hand-offs — far more than ``session.run``
  of a small model (an Add takes ~10 µs). So the batcher keeps each model's recent
  time per row (for each shape of its rows past the first dimension: a sequence model's
  row costs more the longer its sequence), and a run predicted to take less than
  ``inline_below_s`` is made on the event loop itself. A misprediction blocks the loop
  once for that run's length (at most ~1.5 times ``inline_limit_s``, below) and
  raises the estimate to it at once (it comes down gradually); a model slower than the
  bound always goes to the executor, where its compute overlaps the loop's work. A run
  in the executor teaches the estimate the CPU time its thread spent in the run, not the
  time it took (on a CPU session; a GPU run waits on its device, not the CPU): under load
  the thread waits up to the interpreter's switch interval (5 ms by default, 1 ms in
  inferq's services) to take the GIL back from the busy loop after ORT returns, and that
  wait, taken for the model's pace, kept an Add that runs in ~20 us in the executor
  (measured there at 1-5 ms) for as long as the load lasted.
  An inline run never holds a slot, so such a model batches only what arrived in the
  same loop tick; at its pace a batch would save little (``INFERQ_INLINE_RUN_US=0``
  sends every run to the executor, and batches form as they did).
- **An inline run is cut off at ``inline_limit_s``.** A model's time can depend on its
  inputs' values (a Loop whose trip count is an input, a sequence model fed a long
  sequence), so a run predicted fast may take seconds, and on the loop it would stall
  every request, health check and heartbeat of the process for as long. A watch thread
  terminates (``RunOptions.terminate``) an inline run that outlives the limit (20 ms by
  default); the batch is run again in the executor, and the model's pace is raised to
  what it cost, so the loop stalls at most ~1.5 times the limit, once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from runner.errors import ModelRunError, RunnerError
from runner.models import LoadedModel
from runner.providers import device_of

log = logging.getLogger(__name__)

Arrays = dict[str, npt.NDArray[Any]]
Key = tuple[Any, ...]


class BatchExpired(RunnerError, TimeoutError):
    """The request's deadline passed while it waited in the batcher; it was not run."""


class BatchCancelled(RunnerError):
    """The request was cancelled: taken out of the queue, or its run terminated."""


class BatcherFull(RunnerError, OverflowError):
    """More requests queued than the batcher holds."""

    retriable = True


#: Paces remembered (models, and of each the input shapes it was run with lately).
_MAX_PACED = 256


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """How big a batch may grow and how long a partial batch may wait to fill."""

    max_batch_size: int = 32
    max_queue_delay_s: float = 0.002

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if not 0 <= self.max_queue_delay_s <= 10:
            raise ValueError(f"max_queue_delay must be 0..10 s, got {self.max_queue_delay_s}")


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """One request's share of a run."""

    outputs: list[npt.NDArray[Any]]
    #: Wall time of the ``session.run`` that produced these outputs.
    inference_ms: float
    #: From entering the batcher to its run starting in the executor.
    batch_wait_ms: float
    batch_size: int


@dataclass(eq=False, slots=True)
class _Item:
    key: Key
    #: What its run's pace is kept for: the model and, when it batches, its inputs'
    #: shapes past the first dimension (a sequence model's time per row grows with its
    #: sequence, and a short one's pace must not send a long one to the loop).
    pace_key: Any
    model: LoadedModel
    feeds: Arrays
    names: list[str]
    rows: int
    limits: BatchLimits
    fut: asyncio.Future[RunOutcome]
    enqueued: float = field(default_factory=time.perf_counter)
    timer: asyncio.TimerHandle | None = None
    #: Cancelling: set on the loop; the executor thread checks it before each run.
    cancelled: bool = False
    #: The RunOptions of the run it is in now (terminate interrupts that run).
    opts: ort.RunOptions | None = None
    #: Set by the watch thread: its inline run outlived the limit and was terminated.
    overran: bool = False


def batch_key(model: LoadedModel, feeds: Arrays, names: Sequence[str]) -> tuple[Key, int]:
    """The grouping key and the request's row count (0: this request runs alone)."""
    if not model.batchable:
        return (), 0
    rows = -1
    sig: list[tuple[str, str, tuple[int, ...]]] = []
    for name in sorted(feeds):
        arr = feeds[name]
        spec = model.inputs.get(name)
        if spec is None or not spec.shape or spec.shape[0] != -1 or arr.ndim == 0:
            return (), 0
        if arr.dtype.kind in "OUS":  # string tensors: ORT copies them anyway; keep alone
            return (), 0
        if rows not in (-1, arr.shape[0]):
            return (), 0
        rows = arr.shape[0]
        sig.append((name, arr.dtype.str, arr.shape[1:]))
    if rows <= 0:
        return (), 0
    return (model.ref.sha256, tuple(names), tuple(sig)), rows


def _split(values: list[Any], items: list[_Item]) -> list[list[npt.NDArray[Any]]]:
    total = sum(it.rows for it in items)
    arrays = [np.asarray(v) for v in values]
    for name, arr in zip(items[0].names, arrays, strict=True):
        if arr.ndim == 0 or arr.shape[0] != total:
            raise ModelRunError(f"output {name!r} of shape {list(arr.shape)} does not follow "
                                f"the batch's {total} rows, so it cannot be split")
    out: list[list[npt.NDArray[Any]]] = []
    start = 0
    for it in items:
        out.append([a[start:start + it.rows] for a in arrays])
        start += it.rows
    return out


def _run_one(model: LoadedModel, names: list[str], feeds: Arrays,
             opts: ort.RunOptions | None = None) -> list[Any]:
    try:
        if model.bind_device is not None:
            return _run_bound(model, model.bind_device, names, feeds, opts)
        values: list[Any] = model.session.run(names, feeds, opts)
    except Exception as exc:  # ORT raises Fail, InvalidArgument, RuntimeException...
        raise ModelRunError(f"model error: {exc}") from exc
    return values


def _run_bound(model: LoadedModel, device: str, names: list[str], feeds: Arrays,
               opts: ort.RunOptions | None) -> list[Any]:
    """One run through IO binding: inputs bound from host memory, outputs allocated by
    ORT on ``device`` and copied back once, after the run."""
    binding = model.session.io_binding()
    for name, array in feeds.items():
        binding.bind_cpu_input(name, array)
    for name in names:
        binding.bind_output(name, device)
    model.session.run_with_iobinding(binding, opts)
    values: list[Any] = binding.copy_outputs_to_cpu()
    return values


#: Per request: (outputs, inference ms, size of the run it was in), or its error.
_Answer = tuple[list[npt.NDArray[Any]], float, int] | BaseException
#: A batch's answers, when it started, and the CPU ms its thread spent in the run of the
#: whole batch (None: it was run request by request).
_Ran = tuple[list[_Answer], float, float | None]


def _no_clock() -> float:
    return 0.0


def _run_batch(items: list[_Item], cpu_clock: Callable[[], float] = time.thread_time) -> _Ran:
    """In the executor: run ``items`` as one batch, per request if that fails.
    ``cpu_clock``: the thread's CPU time, which only a run in the executor needs."""
    started = time.perf_counter()
    first = items[0]
    if len(items) > 1:
        try:
            feeds = {n: np.concatenate([it.feeds[n] for it in items]) for n in first.feeds}
            opts = ort.RunOptions()
            for it in items:
                it.opts = opts
            if any(it.cancelled for it in items):
                raise BatchCancelled("a request of the batch was cancelled")
            t0, cpu0 = time.perf_counter(), cpu_clock()
            values = _run_one(first.model, first.names, feeds, opts)
            ms = (time.perf_counter() - t0) * 1000
            cpu = (cpu_clock() - cpu0) * 1000
            return [(outs, ms, len(items)) for outs in _split(values, items)], started, cpu
        except Exception:  # noqa: S110 - each request is retried alone below
            pass
    answers: list[_Answer] = []
    cpu_ms: float | None = None
    for it in items:
        # Options first, then the flag: a cancel on the loop either sees these options
        # (and terminates the run) or set the flag before this check.
        it.opts = ort.RunOptions()
        if it.cancelled:
            answers.append(BatchCancelled("cancelled before it ran"))
            continue
        if it.overran:  # cut off on the loop: the batch runs again in the executor
            answers.append(ModelRunError("the run on the loop outlived its limit"))
            continue
        try:
            t0, cpu0 = time.perf_counter(), cpu_clock()
            values = _run_one(it.model, it.names, it.feeds, it.opts)
            ms = (time.perf_counter() - t0) * 1000
            if len(items) == 1:
                cpu_ms = (cpu_clock() - cpu0) * 1000
            answers.append(([np.asarray(v) for v in values], ms, 1))
        except Exception as exc:
            answers.append(BatchCancelled("cancelled while running: the run was terminated")
                           if it.cancelled else exc)
    return answers, started, cpu_ms


#: How long the inline watch thread goes without seeing an inline run before it parks
#: (waits for the next run instead of looking every half limit).
_WATCH_PARKS_AFTER_S = 1.0


class _InlineWatch:
    """A thread that terminates an inline run which outlives ``limit_s``.

    The loop brackets each inline run with ``begin`` and ``end``; every ``limit_s / 2``
    the thread looks, and flags the items of a run older than the limit ``overran`` and
    terminates their runs. Attributes written on each side, no lock: a run that ends as it
    is flagged is merely run again. After a second without seeing a run, the thread parks
    until ``begin`` wakes it, so an idle runner does not wake it 50 times a second. It
    starts with the first inline run and ends with ``close`` (or its batcher)."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.current: tuple[float, list[_Item]] | None = None
        self._parked = False
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def begin(self, items: list[_Item]) -> None:
        # ``current`` before reading ``_parked``: the thread sets ``_parked`` before it
        # reads ``current`` again, so one of the two sees the other's write.
        self.current = (time.perf_counter(), items)
        if self._parked:
            self._parked = False
            self._wake.set()
        if self._thread is None and not self._closed.is_set():
            self._thread = threading.Thread(target=self._watch, name="inferq-inline-watch",
                                            daemon=True)
            self._thread.start()

    def end(self) -> None:
        self.current = None

    def _watch(self) -> None:
        period = self.limit_s / 2
        quiet = 0.0
        while not self._closed.wait(period):
            current = self.current
            if current is None:
                quiet += period
                if quiet >= _WATCH_PARKS_AFTER_S:
                    quiet = 0.0
                    self._parked = True
                    if self.current is None:
                        self._wake.wait()
                    self._wake.clear()
                    self._parked = False
                continue
            quiet = 0.0
            if time.perf_counter() - current[0] > self.limit_s:
                for it in current[1]:
                    it.overran = True  # first: the next request of the batch is not started
                    opts = it.opts
                    if opts is not None:
                        opts.terminate = True

    def close(self) -> None:
        self._closed.set()
        self._wake.set()


class Batcher:
    """Groups requests into batches and runs them on ``executor``, ``slots`` at a time."""

    def __init__(self, executor: Executor, *, slots: int, defaults: BatchLimits,
                 max_queued: int = 10_000, inline_below_s: float = 0.0,
                 inline_limit_s: float = 0.02, counts_arrivals: bool = False) -> None:
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        if max_queued < 1:
            raise ValueError(f"max_queued must be >= 1, got {max_queued}")
        if inline_limit_s <= inline_below_s:
            raise ValueError(f"inline_limit_s ({inline_limit_s}) must exceed inline_below_s "
                             f"({inline_below_s})")
        self._executor = executor
        self._inline_below_ms = inline_below_s * 1000
        self._watch = _InlineWatch(inline_limit_s)
        weakref.finalize(self, self._watch.close)
        #: ``_Item.pace_key`` -> moving average of its runs' milliseconds per row.
        self._pace: dict[Any, float] = {}
        self._slots = slots
        self.defaults = defaults
        self._max_queued = max_queued
        self._queues: OrderedDict[Key, deque[_Item]] = OrderedDict()
        self._queued = 0
        self._running = 0
        self._announced: dict[str, int] = {}
        self._counts_arrivals = counts_arrivals
        self._expected = 0
        self._dispatch_scheduled = False
        self._wake: asyncio.TimerHandle | None = None
        self._seq = 0
        #: Items by the id a caller may cancel them by (the subtask id).
        self._by_id: dict[str, _Item] = {}

    @property
    def queued(self) -> int:
        return self._queued

    # arrivals the runner knows of ------------------------------------------------
    @property
    def expected(self) -> int:
        return self._expected

    def expect(self, n: int) -> None:
        """``n`` requests were taken in and are about to be handled (``counts_arrivals``):
        until each has ``arrived``, a request submitted waits a tick for them."""
        self._expected += n

    def arrived(self) -> None:
        """An expected request is being handled: its handler announces it before it
        first yields, or it never comes."""
        self._expected = max(0, self._expected - 1)

    def announce(self, sha256: str) -> None:
        """A request for this model is decoded and on its way (fetching inputs)."""
        self._announced[sha256] = self._announced.get(sha256, 0) + 1

    def retract(self, sha256: str) -> None:
        """An announced request reached the batcher or will never reach it."""
        n = self._announced.get(sha256, 0) - 1
        if n > 0:
            self._announced[sha256] = n
        else:
            self._announced.pop(sha256, None)

    # submitting ------------------------------------------------------------------
    async def run(self, model: LoadedModel, feeds: Arrays, names: Sequence[str], *,
                  deadline_s: float | None = None,
                  limits: BatchLimits | None = None,
                  cancel_id: str | None = None) -> RunOutcome:
        """Run ``feeds`` through ``model``, batched with its like; ``deadline_s`` is
        ``time.time()`` based. Raises ``BatchExpired``, ``ModelRunError``, ``BatcherFull``."""
        if self._queued >= self._max_queued:
            raise BatcherFull(f"the batcher holds {self._queued} requests; retry shortly")
        loop = asyncio.get_running_loop()
        key, rows = batch_key(model, feeds, names)
        limits = limits or self.defaults
        if rows == 0:
            pace_key: Any = model.ref.sha256
            self._seq += 1
            key = ("alone", self._seq)
        else:
            pace_key = key
            # Only requests under the same limits share a queue, so a batch never holds
            # more than any of its requests allows (tasks of one model may differ).
            key = (*key, limits)
        item = _Item(key=key, pace_key=pace_key, model=model, feeds=feeds, names=list(names),
                     rows=max(rows, 1), limits=limits, fut=loop.create_future())
        if deadline_s is not None:
            delay = deadline_s - time.time()
            if delay <= 0:
                raise BatchExpired("deadline exceeded before the request ran")
            item.timer = loop.call_later(delay, self._expire, item)
        q = self._queues.get(key)
        if q is None:
            q = self._queues[key] = deque()
        q.append(item)
        self._queued += 1
        if cancel_id is not None:
            self._by_id[cancel_id] = item
        if self._counts_arrivals and self._queued == 1 and not (self._expected
                                                                 or self._announced):
            self._dispatch()  # alone, and no other request can join it in this tick
        else:
            self._schedule()
        try:
            return await item.fut
        except asyncio.CancelledError:
            if not self._remove(item):
                # Running: the caller gave up on it (a runner handing its work back on
                # stop), so interrupt the run rather than let it hold an executor thread
                # that process exit would wait for. Flag first, then options (see
                # ``_run_batch``); a batch it shared is rerun for the others.
                item.cancelled = True
                if item.opts is not None:
                    item.opts.terminate = True
            raise
        finally:
            if cancel_id is not None and self._by_id.get(cancel_id) is item:
                del self._by_id[cancel_id]

    def cancel(self, cancel_id: str) -> bool:
        """Cancel the request run with ``cancel_id``: out of the queue if it waits (it
        never runs), else its run is terminated through ``RunOptions.terminate`` and a
        batch it shared is rerun for the others. False if no such request is here."""
        item = self._by_id.get(cancel_id)
        if item is None or item.fut.done():
            return False
        item.cancelled = True
        if self._remove(item):
            item.fut.set_exception(BatchCancelled("cancelled before it ran"))
            return True
        opts = item.opts
        if opts is not None:
            opts.terminate = True
        return True

    def _expire(self, item: _Item) -> None:
        if self._remove(item) and not item.fut.done():
            waited = (time.perf_counter() - item.enqueued) * 1000
            item.fut.set_exception(BatchExpired(
                f"deadline exceeded: the request waited {waited:.0f} ms for the model "
                "and was not run"))

    def _remove(self, item: _Item) -> bool:
        q = self._queues.get(item.key)
        if q is None:
            return False
        try:
            q.remove(item)
        except ValueError:
            return False
        self._queued -= 1
        if not q:
            del self._queues[item.key]
        if item.timer is not None:
            item.timer.cancel()
        return True

    # dispatching -----------------------------------------------------------------
    def _schedule(self) -> None:
        if not self._dispatch_scheduled and self._running < self._slots:
            self._dispatch_scheduled = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_scheduled = False
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        now = time.perf_counter()
        while self._running < self._slots and self._queues:
            key, q = next(iter(self._queues.items()))
            head = q[0]
            limit = head.limits.max_batch_size
            waited = now - head.enqueued
            if (len(q) < limit and self._announced.get(head.model.ref.sha256, 0) > 0
                    and waited < head.limits.max_queue_delay_s):
                # More of its kind are on their way and a slot is free: give them the
                # rest of the window (the only wait this batcher ever adds).
                due = head.limits.max_queue_delay_s - waited
                self._wake = asyncio.get_running_loop().call_later(due, self._dispatch)
                return
            items: list[_Item] = []
            rows = 0
            # The limit counts rows; a request bigger than it runs alone.
            while q and (not items or rows + q[0].rows <= limit):
                it = q.popleft()
                items.append(it)
                rows += it.rows
                if it.timer is not None:
                    it.timer.cancel()
            self._queued -= len(items)
            if q:
                self._queues.move_to_end(key)  # round-robin between kinds
            else:
                del self._queues[key]
            self._start(items)

    def _start(self, items: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        rows = sum(it.rows for it in items)
        pace = self._pace.get(items[0].pace_key)
        if pace is not None and pace * rows < self._inline_below_ms:
            self._watch.begin(items)
            try:
                # Catches its errors into answers; on the loop, the wall time is the pace.
                ran = _run_batch(items, _no_clock)
            finally:
                self._watch.end()
            if not any(it.overran for it in items):
                done_now: asyncio.Future[_Ran] = loop.create_future()
                done_now.set_result(ran)
                self._finish(items, done_now, inline=True)
                return
            self._overran(items)
        try:
            cf = loop.run_in_executor(self._executor, _run_batch, items)
        except RuntimeError as exc:  # the executor is shut down: the runner is stopping
            for it in items:
                if not it.fut.done():
                    it.fut.set_exception(ModelRunError(f"the runner is stopping: {exc}"))
            return
        self._running += 1

        def done(f: asyncio.Future[_Ran]) -> None:
            self._running -= 1
            self._finish(items, f, inline=False)
            if self._queues:
                self._schedule()

        cf.add_done_callback(done)

    def _overran(self, items: list[_Item]) -> None:
        """An inline run was cut off: raise the model's pace to what the run cost so far
        (the loop does not pay for it again), and let the executor run the batch."""
        for it in items:
            it.overran = False
            it.opts = None
        key = items[0].pace_key
        rows = sum(it.rows for it in items)
        self._pace[key] = max(self._pace.get(key, 0.0), self._watch.limit_s * 1000 / rows)
        log.warning("a run of %s:%s on the event loop outlived %.0f ms: terminated, and run "
                    "again in the executor", items[0].model.ref.name,
                    items[0].model.ref.version, self._watch.limit_s * 1000)

    def close(self) -> None:
        """End the inline runs' watch thread."""
        self._watch.close()

    def _learn_pace(self, items: list[_Item], answers: list[_Answer], cpu_ms: float | None,
                    inline: bool) -> None:
        first = answers[0] if answers else None
        if isinstance(first, BaseException) or first is None or first[2] != len(items):
            return  # not one run of the whole batch: says nothing about its pace
        # On the loop, what the run took is what the loop paid. In the executor, a CPU
        # session's thread time: what it would cost the loop, without the GIL hand-back.
        ms = first[1]
        if not inline and cpu_ms is not None and device_of(items[0].model.providers) == "cpu":
            ms = cpu_ms
        per_row = ms / sum(it.rows for it in items)
        key = items[0].pace_key
        old = self._pace.pop(key, None)
        if old is None and len(self._pace) >= _MAX_PACED:
            del self._pace[next(iter(self._pace))]  # the least recently run model
        # Up at once (a slow run must not be made on the loop again), down gradually.
        self._pace[key] = per_row if old is None or per_row > old else 0.7 * old + 0.3 * per_row

    def _finish(self, items: list[_Item], f: asyncio.Future[_Ran], *, inline: bool) -> None:
        exc = f.exception() if not f.cancelled() else asyncio.CancelledError()
        if exc is not None:
            for it in items:
                if not it.fut.done():
                    it.fut.set_exception(exc)
            return
        answers, started, cpu_ms = f.result()
        self._learn_pace(items, answers, cpu_ms, inline)
        if len(answers) != len(items):  # one to one, or nobody gets a wrong answer
            err = ModelRunError(f"batch returned {len(answers)} answers for {len(items)}")
            for it in items:
                if not it.fut.done():
                    it.fut.set_exception(err)
            return
        for it, ans in zip(items, answers, strict=True):
            if it.fut.done():
                continue
            if isinstance(ans, BaseException):
                it.fut.set_exception(ans)
            else:
                outs, ms, size = ans
                it.fut.set_result(RunOutcome(outputs=outs, inference_ms=ms,
                                             batch_wait_ms=(started - it.enqueued) * 1000,
                                             batch_size=size))
