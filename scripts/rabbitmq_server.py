"""Run a throwaway RabbitMQ node (Debian's rabbitmq-server) on free loopback ports.

    python3 -m scripts.rabbitmq_server make bench      # the command, against the node
    RabbitMQServer().start() ... .stop()                # from a test fixture

The node keeps everything in one temporary directory owned by the `rabbitmq`
user (the server script switches to it), answers `guest`/`guest` from
loopback only, and is stopped, with the epmd it started, by stop().
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts.ports import free_port


class RabbitMQNotFound(RuntimeError):
    pass


def _epmd_running() -> bool:
    return subprocess.run(["pgrep", "-x", "epmd"], capture_output=True).returncode == 0


class RabbitMQServer:
    def __init__(self) -> None:
        if shutil.which("rabbitmq-server") is None:
            raise RabbitMQNotFound(
                "No rabbitmq-server found: install it (apt-get install -y rabbitmq-server)."
            )
        self.port = free_port()
        self.node = f"t{self.port}@localhost"
        self.dir = Path(tempfile.mkdtemp(prefix="rabbitmq-"))
        self.process: subprocess.Popen[bytes] | None = None
        self._started_epmd = False

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def env(self) -> dict[str, str]:
        d = self.dir
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self._dist_port),
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "plugins"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(d / "feature_flags"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
        }

    def ctl(self, *args: str, check: bool = True) -> str:
        """rabbitmqctl against this node (set_policy, list_queues, ...)."""
        done = subprocess.run(
            ["rabbitmqctl", "-n", self.node, "-q", *args],
            env=self.env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr or done.stdout}")
        return done.stdout

    def start(self, timeout: float = 90.0) -> RabbitMQServer:
        self._dist_port = free_port()
        self.dir.chmod(0o755)  # the rabbitmq user must traverse it
        (self.dir / "plugins").write_text("[].\n")
        # acks_late tasks may wait longer than the default 30-minute consumer timeout.
        (self.dir / "rabbitmq.conf").write_text("consumer_timeout = 3600000\n")
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(self.dir)], check=True)
        self._started_epmd = not _epmd_running()
        self.process = subprocess.Popen(
            ["rabbitmq-server"], env=self.env, start_new_session=True,
            stdout=(self.dir / "server.out").open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                out = (self.dir / "server.out").read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"RabbitMQ node {self.node} did not start:\n{out}")
            time.sleep(0.5)
        return self

    def _ready(self) -> bool:
        done = subprocess.run(
            ["rabbitmqctl", "-n", self.node, "-q", "await_startup", "--timeout", "5"],
            env=self.env, capture_output=True, check=False,
        )  # fmt: skip
        return done.returncode == 0

    def stop(self) -> None:
        if self.process is not None:
            self.ctl("stop", check=False)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(5)
            self.process = None
        if self._started_epmd:
            subprocess.run(["pkill", "-x", "epmd"], check=False)
            self._started_epmd = False
        shutil.rmtree(self.dir, ignore_errors=True)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    server = RabbitMQServer().start()
    try:
        version = server.ctl("version", check=False).strip()
        print(f"with-rabbitmq: RabbitMQ {version} at {server.url}", flush=True)
        env = {**os.environ, "CELERY_BROKER_URL": server.url, "WITH_RABBITMQ_NODE": server.node}
        return subprocess.run(argv, env=env, check=False).returncode
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
