"""What route handlers share: settings, registry view, submit core, model store."""

from __future__ import annotations

from dataclasses import dataclass

from bus.base import Bus
from bus.registry_view import RegistryView
from bus.topics import TopicNames
from ingest.file_store import FileStore
from ingest.lifecycle import LifecycleView
from ingest.model_store import ModelStore
from ingest.results import ResultBook
from ingest.runners_view import RunnersView
from ingest.settings import IngestSettings
from ingest.submit import SubmitCore


@dataclass(frozen=True, slots=True)
class IngestContext:
    settings: IngestSettings
    bus: Bus
    topics: TopicNames
    registry: RegistryView
    results: ResultBook
    core: SubmitCore
    models: ModelStore
    runners: RunnersView
    lifecycle: LifecycleView
    files: FileStore
