"""Resilience: circuit breakers shared by every worker, and their behaviour."""
