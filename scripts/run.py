"""`make run`: the whole system in one terminal; Ctrl-C stops everything it started.

python -m scripts.run                     # Redis as the broker (REDIS_URL, else embedded)
python -m scripts.run --broker rabbitmq   # a throwaway RabbitMQ node as the broker
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from honcho.manager import Manager
from honcho.printer import Printer

from scripts.rabbitmq_server import RabbitMQServer
from scripts.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def processes(web_port: str, flower_port: str) -> dict[str, list[str]]:
    """The command line of each process. No secret on any: a command line is
    visible to every user of the machine (ps); Flower reads its basic-auth
    credentials from FLOWER_BASIC_AUTH in its environment."""
    manage = [PYTHON, "manage.py"]
    celery = [PYTHON, "-m", "celery", "-A", "config"]
    return {
        "web": [*manage, "runserver", f"127.0.0.1:{web_port}", "--noreload"],
        "worker": [*celery, "worker", "-l", "INFO", "--concurrency", "2", "-n", "worker@%h"],
        "beat": [*celery, "beat", "-l", "INFO"],
        "flower": [*celery, "flower", f"--port={flower_port}", "--address=127.0.0.1"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", choices=["redis", "rabbitmq"], default="redis")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    env.setdefault("DJANGO_DEBUG", "true")
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    web_port = env.setdefault("PORT", "8000")
    flower_port = env.setdefault("FLOWER_PORT", "5555")
    env.setdefault("PUBLIC_FLOWER_URL", f"http://127.0.0.1:{flower_port}")
    if not env.get("FLOWER_BASIC_AUTH"):
        env["FLOWER_BASIC_AUTH"] = f"flower:{secrets.token_urlsafe(12)}"

    with contextlib.ExitStack() as servers:
        if args.broker == "rabbitmq" and not env.get("CELERY_BROKER_URL"):
            rabbitmq = servers.enter_context(_started(RabbitMQServer()))
            env["CELERY_BROKER_URL"] = rabbitmq.url
            print(f"Throwaway RabbitMQ {rabbitmq.ctl('version').strip()} on {rabbitmq.url} "
                  "(quorum queues; removed on exit)")  # fmt: skip
        # Redis also keeps the breakers' state and the fake payment provider's
        # ledger when RabbitMQ is the broker.
        if not env.get("REDIS_URL") and not env.get("CELERY_BROKER_URL", "").startswith("redis"):
            redis_server = servers.enter_context(
                _started(RedisServer(data_dir=ROOT / "var" / "redis"))
            )
            env["REDIS_URL"] = redis_server.url
            print(f"Embedded Redis on {redis_server.url} (data in var/redis)")
        return _run(env, web_port, flower_port)


@contextlib.contextmanager
def _started(server: RedisServer | RabbitMQServer) -> Iterator[Any]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _run(env: dict[str, str], web_port: str, flower_port: str) -> int:
    manage = [PYTHON, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput"], env=env, cwd=ROOT, check=True)
    subprocess.run([*manage, "collectstatic", "--noinput", "-v0"], env=env, cwd=ROOT, check=True)
    subprocess.run([*manage, "seed_demo"], env=env, cwd=ROOT, check=True)
    manager = Manager(Printer(sys.stdout))
    # Web and worker count Prometheus metrics into one directory, so the
    # web's /metrics adds up every process (emptied at each start).
    metrics_dir = ROOT / "var" / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    # Flower's password goes to Flower alone, in its environment.
    others = {k: v for k, v in env.items() if k != "FLOWER_BASIC_AUTH"}
    envs = {"flower": env, "beat": others}
    counting = {**others, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    for name, argv in processes(web_port, flower_port).items():
        process_env = envs.get(name, counting)
        manager.add_process(name, subprocess.list2cmdline(argv), env=process_env, cwd=str(ROOT))
    print(
        "\n"
        f"  Site:    http://127.0.0.1:{web_port}/orders/\n"
        f"  Admin:   http://127.0.0.1:{web_port}/admin/ (mediator/dashboard/ for operators)\n"
        f"  Metrics: http://127.0.0.1:{web_port}/metrics\n"
        f"  Flower:  {env['PUBLIC_FLOWER_URL']}/  (basic auth {env['FLOWER_BASIC_AUTH']})\n"
        "  Logins are printed by seed_demo above. Ctrl-C stops everything.\n",
        flush=True,
    )
    manager.loop()
    return int(manager.returncode or 0)


if __name__ == "__main__":
    sys.exit(main())
