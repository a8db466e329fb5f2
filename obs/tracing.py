"""W3C trace context across HTTP, Kafka headers and the services' logs.

Ingest copies the caller's ``traceparent`` (or a new one) into the request's Kafka
headers; the runner copies it onto the result and events; runner and notifier put its
trace id on every log line about that subtask (``log_fields``). Spans go through the
OpenTelemetry *API* only: without an SDK they are non-recording and cost next to
nothing, yet keep the trace id. An exporter is installed only when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and the optional OpenTelemetry SDK and OTLP
exporter packages are installed (``configure_tracing``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from obs.random_ids import traceparent

log = logging.getLogger(__name__)

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_propagator = TraceContextTextMapPropagator()


def new_traceparent() -> str:
    """A fresh, sampled W3C traceparent."""
    return traceparent()


def parse_traceparent(value: str | bytes | None) -> tuple[str, str] | None:
    """(trace id, parent span id) of a well-formed traceparent, else None."""
    if value is None:
        return None
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    m = _TRACEPARENT.match(text.strip().lower())
    if m is None or m.group(1) == "0" * 32 or m.group(2) == "0" * 16:
        return None
    return m.group(1), m.group(2)


def log_fields(traceparent: str | bytes | None) -> dict[str, str]:
    """The ``extra`` fields that tie a log line to its trace (empty if there is none)."""
    ids = parse_traceparent(traceparent)
    return {"trace_id": ids[0], "span_id": ids[1]} if ids else {}


_TRACER: trace.Tracer | None = None
#: Providers under which every span is non-recording (the API's own, before any SDK).
_NOTHING_RECORDS = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)


def _tracer() -> trace.Tracer:
    # One tracer for the process: ``get_tracer`` builds a new one on every call. Before
    # ``configure_tracing`` this is the API's proxy tracer, which follows the provider
    # installed later, so caching it early loses nothing.
    global _TRACER
    if _TRACER is None:
        _TRACER = trace.get_tracer("inferq")
    return _TRACER


def record_span(
    name: str, traceparent: str | bytes | None, start_ns: int, end_ns: int,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> None:
    """Record a finished span as a child of ``traceparent``.

    Recording after the fact keeps the instrumented code free of nested ``with``
    blocks; with no SDK installed this returns at once.
    """
    if isinstance(trace.get_tracer_provider(), _NOTHING_RECORDS):
        return  # no SDK installed: the span would be non-recording, dropped unseen
    text = traceparent.decode("ascii", "replace") if isinstance(traceparent, bytes) else (
        traceparent or "")
    ctx = _propagator.extract({"traceparent": text}) if text else None
    span = _tracer().start_span(name, context=ctx, start_time=start_ns,
                                                 attributes=dict(attributes or {}))
    span.end(end_time=end_ns)


def configure_tracing(service: str, env: Mapping[str, str] | None = None) -> bool:
    """Install an OTLP exporter when one is configured and available; True if installed."""
    env = os.environ if env is None else env
    if not env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but the exporter is not installed: "
                    "pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http")
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": f"inferq-{service}"}))
    # The exporter reads its endpoint, headers and timeouts from the OTEL_* variables.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True
