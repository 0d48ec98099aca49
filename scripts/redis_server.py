"""The throwaway redis-server the scripts and tests start: mediator.testing's."""

from mediator.testing.redis_server import RedisNotFound, RedisServer, find_redis_server

__all__ = ["RedisNotFound", "RedisServer", "find_redis_server"]
