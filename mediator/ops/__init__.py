"""Ops: what operators use. The admin, the dashboard, the /metrics and breaker
views, the correlation-id middleware and the system checks."""
