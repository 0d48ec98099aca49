"""Run a throwaway RabbitMQ node (Debian's rabbitmq-server) on free loopback ports.

    python3 -m scripts.rabbitmq_server make bench      # the command, against the node
    RabbitMQServer().start() ... .stop()                # from a test fixture

The node keeps everything in one temporary directory owned by the `rabbitmq`
user (the server script switches to it), answers `guest`/`guest` from
loopback only, and uses an epmd of its own on a free port (ERL_EPMD_PORT):
the shared one on 4369 may belong to another node, so stop() ends only ours.
kill() is a crash (SIGKILL, no clean shutdown); start() again brings the node
back on the same ports and data directory, with its durable queues.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts.ports import free_port


class RabbitMQNotFound(RuntimeError):
    pass


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    children = Path(f"/proc/{pid}/task/{pid}/children")
    with contextlib.suppress(OSError):
        for child in map(int, children.read_text().split()):
            found += [child, *_descendants(child)]
    return found


class RabbitMQServer:
    def __init__(self) -> None:
        if shutil.which("rabbitmq-server") is None:
            raise RabbitMQNotFound(
                "No rabbitmq-server found: install it (apt-get install -y rabbitmq-server)."
            )
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"t{self.port}@localhost"
        self.dir = Path(tempfile.mkdtemp(prefix="rabbitmq-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def env(self) -> dict[str, str]:
        d = self.dir
        return {
            **os.environ,
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            # Erlang distribution (rabbitmqctl's way in) on loopback too.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
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

    def start(self, timeout: float = 90.0, *, wait: bool = True) -> RabbitMQServer:
        """Start the node (again, after kill(): same ports, same data); with
        wait=False return at once and call wait_ready() later."""
        if self.starts == 0:
            self.dir.chmod(0o755)  # the rabbitmq user must traverse it
            (self.dir / "plugins").write_text("[].\n")
            # acks_late tasks may wait longer than the default 30-minute consumer timeout.
            (self.dir / "rabbitmq.conf").write_text("consumer_timeout = 3600000\n")
            if os.geteuid() == 0:
                subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(self.dir)], check=True)
        self.starts += 1
        self.process = subprocess.Popen(
            ["rabbitmq-server"], env=self.env, start_new_session=True,
            stdout=(self.dir / f"server-{self.starts}.out").open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 90.0) -> None:
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                out = (self.dir / f"server-{self.starts}.out").read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"RabbitMQ node {self.node} did not start:\n{out}")
            time.sleep(0.5)

    def ready(self) -> bool:
        done = subprocess.run(
            ["rabbitmqctl", "-n", self.node, "-q", "await_startup", "--timeout", "5"],
            env=self.env, capture_output=True, check=False,
        )  # fmt: skip
        return done.returncode == 0

    def kill(self) -> None:
        """SIGKILL the node and everything its start script spawned, as a
        crash or the OOM killer would: no clean shutdown. The data stays.
        By process tree, not process group: `su` starts the node in a
        session of its own."""
        if self.process is None:
            return
        for pid in [self.process.pid, *_descendants(self.process.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.ctl("stop", check=False)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(30)
            self.kill()  # whatever a failed stop left in the node's process group
        if self.starts:
            # Our own epmd (it daemonises, outside the node's process group).
            subprocess.run(
                ["epmd", "-port", str(self.epmd_port), "-kill"],
                env=self.env, capture_output=True, check=False,
            )  # fmt: skip
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
