"""Does the runner's own execution path give the right answers on the providers that load
here? For the lent GPU machine (bench/gpu/run.sh runs it before the bench), and runnable
anywhere: ``python -m bench.gpu.check``.

Each bench model is loaded through the runner's ``ModelCache`` (provider choice, IO
binding where it applies, warm-up) and run through its ``Batcher`` at several batch sizes
and as concurrent requests that batch together; every output is compared with ONNX
Runtime on the CPU provider. Prints the providers and the IO-binding device each model
got, the largest difference, and the mean run time per batch size. Exits 1 on a wrong
answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench.models import BenchModel, build
from bench.rawort import session
from runner.batcher import Batcher, BatchLimits
from runner.cpu_quota import usable_cores
from runner.models import LoadedModel, ModelCache, fitted_intra_op_threads
from runner.providers import usable_providers
from runner.settings import RunnerSettings
from schemas.messages import ModelRef

#: TF32 matrix products on the GPU (ORT's CUDA default) agree with FP32 to about 1e-3.
RTOL, ATOL = 1e-2, 1e-3
BATCHES = (1, 8, 32)


def _compare(got: list[Any], want: list[Any]) -> tuple[bool, float]:
    """Whether every output agrees within the tolerance, and the largest difference."""
    pairs = list(zip(got, want, strict=True))
    good = all(np.allclose(g, w, rtol=RTOL, atol=ATOL) for g, w in pairs)
    return good, max(float(np.max(np.abs(g.astype(np.float64) - w))) for g, w in pairs)


async def _check(model: BenchModel, loaded: LoadedModel, batcher: Batcher) -> bool:
    reference = session(model, 1)
    names = list(loaded.outputs)
    ok = True
    for rows in BATCHES:
        feeds = model.feeds(rows)
        want = reference.run(names, feeds)
        took = []
        for _ in range(5):
            t0 = time.perf_counter()
            got = await batcher.run(loaded, feeds, names)
            took.append((time.perf_counter() - t0) * 1000)
        good, diff = _compare(got.outputs, want)
        ok &= good
        print(f"  {model.name} batch {rows:>2}: {'ok ' if good else 'WRONG'} max |diff| "
              f"{diff:.2e}, {np.mean(took[1:]):.3f} ms a run")
    # Concurrent single-row requests, which the batcher puts in one run and splits back.
    rng = np.random.default_rng(7)
    singles = [{n: (a + rng.standard_normal(a.shape).astype(a.dtype)
                    if a.dtype.kind == "f" else a) for n, a in model.feeds(1).items()}
               for _ in range(16)]
    outcomes = await asyncio.gather(*(batcher.run(loaded, f, names) for f in singles))
    for f, outcome in zip(singles, outcomes, strict=True):
        if not _compare(outcome.outputs, reference.run(names, f))[0]:
            ok = False
            print(f"  {model.name}: a batched request got another's answer or a wrong one")
            break
    sizes = sorted({o.batch_size for o in outcomes})
    print(f"  {model.name}: 16 concurrent requests ran in batches of {sizes}")
    return ok


async def main(names: list[str], work: Path | None = None) -> int:
    settings = RunnerSettings.from_env()
    providers = usable_providers(settings.providers)
    print("providers that load:", providers)
    work = work or Path(tempfile.mkdtemp(prefix="inferq-gpu-check-"))
    models = build(names, work / "models")
    executor = ThreadPoolExecutor(1, thread_name_prefix="ort")
    cache = ModelCache(providers=providers, cache_dir=work / "cache", max_models=len(models),
                       intra_op_threads=fitted_intra_op_threads(
                           settings.intra_op_threads, 1, usable_cores()),
                       executor=executor, io_binding=settings.io_binding,
                       warm_batch=max(BATCHES))
    batcher = Batcher(executor, slots=1, defaults=BatchLimits(max(BATCHES), 0.002))
    ok = True
    for model in models.values():
        ref = ModelRef(name=model.name, version="1", uri=model.path.as_uri(),
                       sha256=hashlib.sha256(model.path.read_bytes()).hexdigest())
        loaded = await cache.get(ref)
        print(f"{model.name}: session providers {list(loaded.providers)}, "
              f"IO binding {loaded.bind_device or 'off'}")
        ok &= await _check(model, loaded, batcher)
    executor.shutdown()
    print("all answers match the CPU provider's" if ok else "WRONG ANSWERS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:] or ["tiny", "mlp", "tokens"])))
