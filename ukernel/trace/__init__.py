"""Tracing: events (the Tracer, its sinks, ``load``) and views/ (one module per view).

May import ukernel.abi and ukernel.testing (the route selector); never the kernel.
"""

from .events import (
    SCHEMA_VERSION,
    ConsoleSink,
    Event,
    JsonlSink,
    MemorySink,
    ProgressSink,
    Sink,
    Tracer,
    errno_field,
    fault_outcome,
    fault_text,
    format_event,
    load,
    short,
)

__all__ = [
    "SCHEMA_VERSION",
    "ConsoleSink",
    "Event",
    "JsonlSink",
    "MemorySink",
    "ProgressSink",
    "Sink",
    "Tracer",
    "errno_field",
    "fault_outcome",
    "fault_text",
    "format_event",
    "load",
    "short",
]
