"""Which models a runner loads before it joins its group (``INFERQ_RUNNER_PRELOAD``).

A runner that loads a model at its first request makes that request (and every one
queued behind it) wait for the load: a second for a large CPU model, minutes for a
TensorRT engine build. Preloaded, the model is loaded and warmed up (on TensorRT, which
builds engines as the session is made and first run, that should include the build; no
GPU was lent to see it) before the runner takes a partition.

Each name is ``name:version``, or ``name`` for its newest version (numbered versions by
number, as the v2 protocol's newest), or ``*`` for the newest version of every model.
A name the registry does not hold, or more models than the runner keeps loaded, stops
the runner with a message naming it: a typo should not pass for a cold start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

from bus.base import Bus
from bus.registry_view import RegistryView
from runner.models import ModelCache
from schemas.env import SettingError
from schemas.messages import ModelRef
from schemas.registry import ModelRecord, model_uri, newest_versions

log = logging.getLogger(__name__)

SETTING = "INFERQ_RUNNER_PRELOAD"


def resolve(wanted: Sequence[str], models: Mapping[str, ModelRecord],
            max_models: int) -> list[ModelRecord]:
    """The records ``wanted`` names, in its order, each once."""
    newest = newest_versions(models.values())
    out: dict[str, ModelRecord] = {}
    for name in wanted:
        if name == "*":
            picked = [newest[n] for n in sorted(newest)]
        elif name in models:
            picked = [models[name]]
        elif name in newest:
            picked = [newest[name]]
        else:
            raise SettingError(f"{SETTING} names model {name!r}, which the registry "
                               "does not hold")
        for m in picked:
            out.setdefault(m.id, m)
    if len(out) > max_models:
        raise SettingError(f"{SETTING} names {len(out)} models, more than the "
                           f"{max_models} INFERQ_RUNNER_MAX_MODELS keeps loaded")
    return list(out.values())


async def preload(bus: Bus, registry_topic: str, wanted: Sequence[str], cache: ModelCache,
                  *, max_models: int, model_base_url: str = "") -> list[str]:
    """Replays the registry, then loads what ``wanted`` names one by one, logging each
    as it starts and ends; returns the model ids loaded."""
    view = RegistryView(bus, registry_topic)
    await view.start()
    try:
        records = resolve(wanted, view.models, max_models)
    finally:
        await view.stop()
    for i, m in enumerate(records, 1):
        log.info("preloading model %d/%d", i, len(records), extra={"model": m.id})
        started = time.perf_counter()
        await cache.get(ModelRef(name=m.name, version=m.version, sha256=m.sha256,
                                 uri=model_uri(m, model_base_url), size=m.size),
                        max_batch=m.max_batch_size or 0)
        log.info("model preloaded", extra={"model": m.id,
                                           "seconds": round(time.perf_counter() - started, 3)})
    return [m.id for m in records]
