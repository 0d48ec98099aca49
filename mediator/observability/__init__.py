"""Observability: metrics, tracing, log context, the event timeline, read-only
selectors and the wiring graph."""
