"""A free loopback port: mediator.testing's (standard library only, so
scripts/with-rabbitmq can import it under the system Python)."""

from mediator.testing.ports import free_port

__all__ = ["free_port"]
