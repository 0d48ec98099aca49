"""`make prod-check`: the docker-compose.yml stack, run without Docker, probed over HTTP.

The app services' commands and environment are read from docker-compose.yml
and run as they are, from a copy of the image's build context (the tree minus
.dockerignore, standing in for WORKDIR), on a throwaway PostgreSQL (password
auth, as compose's) and a throwaway Redis that asks for a password. Only
addresses are rewritten (rewrites(): loopback and free ports for the compose
network's names and 0.0.0.0, the temp tree for /app); a compose command or
address this script does not know fails the check instead of being skipped.

It runs as the operator of compose behind a TLS-terminating proxy would: a
random SECRET_KEY, REDIS_PASSWORD, METRICS_TOKEN and FLOWER_BASIC_AUTH, and
SECURE_SSL_REDIRECT=true (compose's default, false, is what `check --deploy`
warns about). The HTTP requests carry what such a proxy adds to a browser's
(`X-Forwarded-Proto: https`, which the settings trust) and the cookies a
browser keeps: they are Secure, so they are kept here by hand, not by a
cookie jar that would refuse to send them over this plain-HTTP hop.

Every step prints PASS or FAIL; the exit status is 1 if any failed. Every
process it started is stopped (its process group, SIGTERM then SIGKILL) and
its temp dirs removed, also on failure and Ctrl-C.

    python -m scripts.prod_check
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import requests
import yaml

from scripts.image_context import build_context
from scripts.ports import free_port
from scripts.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("web", "worker", "beat", "flower")
VENV_BIN = Path(sys.executable).parent
T = TypeVar("T")


class CheckFailed(Exception):
    pass


# --- docker-compose.yml, as compose reads it ---------------------------------

_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation: ${V}, $V, ${V:-default}, ${V-default},
    ${V:?error}, ${V?error}, and $$ for a literal $."""
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        empty = not value
        if op in (":-", "-") and (value is None or (op == ":-" and empty)):
            return arg
        if op in (":?", "?") and (value is None or (op == ":?" and empty)):
            missing.append(f"{name} ({arg})" if arg else name)
            return ""
        return value or ""

    result = _VARIABLE.sub(substitute, text)
    if missing:
        raise CheckFailed(f"docker-compose.yml needs {', '.join(missing)}")
    return result


def interpolated(tree: Any, env: Mapping[str, str]) -> Any:
    if isinstance(tree, str):
        return interpolate(tree, env)
    if isinstance(tree, list):
        return [interpolated(item, env) for item in tree]
    if isinstance(tree, dict):
        return {key: interpolated(value, env) for key, value in tree.items()}
    return tree


def command_steps(command: str | list[str]) -> list[list[str]]:
    """A service's command as the programs it runs, one after another:
    `sh -c "a && b && c"` is three; the last one is the long-running server."""
    argv = command if isinstance(command, list) else shlex.split(command)
    if argv[:2] == ["sh", "-c"] and len(argv) == 3:
        return [shlex.split(part) for part in argv[2].split("&&")]
    return [argv]


def healthcheck_argv(test: list[str] | str) -> list[str]:
    if isinstance(test, str):
        return ["sh", "-c", test]
    kind, *rest = test
    if kind == "CMD":
        return rest
    if kind == "CMD-SHELL":
        return ["sh", "-c", rest[0]]
    raise CheckFailed(f"health check {test!r}: prod-check knows CMD and CMD-SHELL only")


def _duration(text: str) -> float:
    seconds = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(
        float(number) * seconds[unit] for number, unit in re.findall(r"([\d.]+)(ms|s|m|h)", text)
    )


def read_compose_file(compose_file: Path) -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load(compose_file.read_text())
    return compose


@dataclass
class Service:
    name: str
    steps: list[list[str]]
    environment: dict[str, str]
    healthcheck: list[str] | None = None
    healthcheck_timeout: float = 30.0


def compose_services(operator_env: Mapping[str, str], compose_file: Path) -> dict[str, Service]:
    """The app services of the compose file, interpolated with operator_env
    (what an operator's .env would hold; nothing from this shell leaks in)."""
    compose = interpolated(read_compose_file(compose_file), operator_env)
    services = {}
    for name in APP_SERVICES:
        spec = compose["services"][name]
        environment = spec.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.partition("=")[::2] for item in environment)
        check = spec.get("healthcheck") or {}
        services[name] = Service(
            name=name,
            steps=command_steps(spec["command"]),
            environment={key: "" if v is None else str(v) for key, v in environment.items()},
            healthcheck=healthcheck_argv(check["test"]) if check.get("test") else None,
            healthcheck_timeout=_duration(str(check.get("timeout", "30s"))),
        )
    return services


# --- compose addresses to this machine's ---------------------------------------


@dataclass(frozen=True)
class Ports:
    web: int
    flower: int
    postgres: int
    redis: int

    @classmethod
    def free(cls) -> Ports:
        chosen: set[int] = set()
        while len(chosen) < 4:
            chosen.add(free_port())
        return cls(*sorted(chosen))


def rewrites(ports: Ports, workdir: str, tree: Path) -> dict[str, str]:
    """Every compose address prod-check replaces, and by what. Each must be
    found somewhere: an entry left unused means compose changed under it."""
    return {
        "0.0.0.0:8000": f"127.0.0.1:{ports.web}",  # gunicorn --bind
        "127.0.0.1:8000": f"127.0.0.1:{ports.web}",  # web's health check
        "--port=5555": f"--port={ports.flower}",
        "--address=0.0.0.0": "--address=127.0.0.1",
        "127.0.0.1:5555": f"127.0.0.1:{ports.flower}",  # flower's health check
        "@postgres:5432/": f"@127.0.0.1:{ports.postgres}/",
        "@redis:6379/": f"@127.0.0.1:{ports.redis}/",
        f"{workdir}/": f"{tree}/",
    }


class Rewriter:
    def __init__(self, table: dict[str, str], hosts: Iterable[str] = ("postgres", "redis")) -> None:
        """hosts: the compose network's names (its services), which must not
        survive the rewriting; nor may 0.0.0.0, every interface."""
        self.table = table
        self.used: set[str] = set()
        names = "|".join(re.escape(host) for host in hosts)
        self.unrewritten = re.compile(rf"0\.0\.0\.0|\b(?:{names}):\d")

    def __call__(self, text: str) -> str:
        for old, new in self.table.items():
            if old in text:
                self.used.add(old)
                text = text.replace(old, new)
        if self.unrewritten.search(text):
            raise CheckFailed(f"prod-check does not know how to run {text!r} on this machine")
        return text

    def service(self, service: Service) -> Service:
        return Service(
            name=service.name,
            steps=[[self(arg) for arg in step] for step in service.steps],
            environment={key: self(value) for key, value in service.environment.items()},
            healthcheck=[self(a) for a in service.healthcheck] if service.healthcheck else None,
            healthcheck_timeout=service.healthcheck_timeout,
        )

    def unused(self) -> list[str]:
        return [old for old in self.table if old not in self.used]


def dockerfile_facts(dockerfile: Path) -> tuple[str, dict[str, str], list[str]]:
    """WORKDIR, ENV, and the directories its RUN mkdir -p creates."""
    text = dockerfile.read_text().replace("\\\n", " ")
    workdir = re.search(r"^WORKDIR\s+(\S+)", text, re.MULTILINE)
    if workdir is None:
        raise CheckFailed("the Dockerfile has no WORKDIR")
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV\s+(.+)$", text, re.MULTILINE):
        env.update(item.partition("=")[::2] for item in shlex.split(line))
    made = [
        path for args in re.findall(r"mkdir -p((?:\s+/[^\s&;]+)+)", text) for path in args.split()
    ]
    return workdir.group(1), env, made


# --- the throwaway servers and the processes -------------------------------------


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)), None
    )
    if not found:
        raise CheckFailed(f"{name} not found (apt-get install postgresql)")
    return str(found)


class Postgres:
    """initdb in a temp dir, user shop with a password (scram), loopback only.
    As root, the server runs as nobody (PostgreSQL refuses root)."""

    def __init__(self, port: int, password: str) -> None:
        self.port, self.password = port, password
        self.dir = Path(tempfile.mkdtemp(prefix="prod-check-pg-"))
        self.as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "nobody")
        self.pg_ctl = _pg_bin("pg_ctl")
        self.started = False

    def start(self) -> str:
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.as_user:
            shutil.chown(pwfile, "nobody")
        initdb = [_pg_bin("initdb"), "-D", str(self.dir / "data"), "-U", "shop", "-E", "UTF8"]
        initdb += ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
        _run([*self.as_user, *initdb])
        pwfile.unlink()
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
        self.started = True
        _run([*self.as_user, self.pg_ctl, "-D", str(self.dir / "data"), "-l",
              str(self.dir / "server.log"), "-w", "-o", options, "start"])  # fmt: skip
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="shop", password=self.password,
            dbname="postgres", autocommit=True,
        ) as connection:  # fmt: skip
            version = connection.info.server_version
            connection.execute("CREATE DATABASE shop")  # compose's POSTGRES_DB
        return f"{version // 10000}.{version % 10000}"

    def log(self) -> Path:
        return self.dir / "server.log"

    def stop(self) -> None:
        if self.started:
            data = str(self.dir / "data")
            stopped = subprocess.run(
                [*self.as_user, self.pg_ctl, "-D", data, "-m", "fast", "-w", "stop"],
                capture_output=True, timeout=60,
            )  # fmt: skip
            if stopped.returncode != 0:
                subprocess.run([*self.as_user, self.pg_ctl, "-D", data, "-m", "immediate",
                                "-w", "stop"], capture_output=True, timeout=60)  # fmt: skip
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)
    if done.returncode != 0:
        raise CheckFailed(f"{shlex.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class Stack:
    """Everything prod-check starts, so that stop() can end it all."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="prod-check-")))
    processes: list[Process] = field(default_factory=list)
    postgres: Postgres | None = None
    redis: RedisServer | None = None

    @property
    def tree(self) -> Path:
        return self.workdir / "app"

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Process:
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                argv, cwd=self.tree, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def print_logs(self, lines: int = 40) -> None:
        logs = [(p.name, p.log) for p in self.processes]
        if self.postgres is not None:
            logs.append(("postgres", self.postgres.log()))
        for name, path in logs:
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                print(f"--- last {len(tail)} lines of {name}'s log", *tail, sep="\n")

    def stop(self, grace: float = 20.0) -> list[str]:
        """Stop every process group (newest first), then the servers; remove
        the temp dirs. Returns the processes that needed a SIGKILL."""
        killed = []
        for process in reversed(self.processes):
            if not _stop_group(process.popen, grace):
                killed.append(process.name)
        self.processes.clear()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        shutil.rmtree(self.workdir, ignore_errors=True)
        return killed


def _stop_group(popen: subprocess.Popen[bytes], grace: float) -> bool:
    """SIGTERM the process's group, SIGKILL what is left after `grace` seconds.
    True when the leader exited on SIGTERM."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGTERM)
    try:
        popen.wait(grace)
        graceful = True
    except subprocess.TimeoutExpired:
        graceful = False
    with contextlib.suppress(ProcessLookupError):  # the group's stragglers
        os.killpg(popen.pid, signal.SIGKILL)
    popen.wait(10)
    return graceful


def wait_until(
    probe: Callable[[], T | Literal[False] | None],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], None],
) -> T:
    """Poll probe() until it returns something truthy; fail after `timeout`
    seconds, or as soon as one of the stack's processes has died (alive() raises)."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        alive()
        try:
            value = probe()
            if value:
                return value
        except (
            requests.RequestException,
            CheckFailed,
            OSError,
            subprocess.TimeoutExpired,
        ) as error:
            last_error = f" (last: {error})"
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}{last_error}")
        time.sleep(0.25)


# --- HTTP as a browser behind the TLS proxy ---------------------------------------

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Browser:
    def __init__(self, base: str) -> None:
        self.base = base
        self.host = base.split("://", 1)[1]
        self.cookies: dict[str, str] = {}
        self.flags: dict[str, tuple[bool, bool]] = {}  # name -> (Secure, HttpOnly)
        self.http = http()

    def request(
        self, method: str, path: str, *, data: dict[str, str] | None = None, proxied: bool = True
    ) -> requests.Response:
        headers = {"User-Agent": "prod-check"}
        if proxied:  # what the TLS-terminating proxy adds
            headers["X-Forwarded-Proto"] = "https"
        if method == "POST":  # browsers send Origin with every POST
            headers["Origin"] = f"https://{self.host}"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = self.http.request(
            method, self.base + path, data=data, headers=headers, allow_redirects=False, timeout=15
        )
        self.http.cookies.clear()  # kept in self.cookies instead
        for cookie in response.cookies:
            self.cookies[cookie.name] = cookie.value or ""
            self.flags[cookie.name] = (
                bool(cookie.secure),
                cookie.has_nonstandard_attr("HttpOnly") or cookie.has_nonstandard_attr("httponly"),
            )
        return response

    def csrf_token(self, html: str) -> str:
        match = CSRF_INPUT.search(html)
        if match is None:
            raise CheckFailed("the page has no csrfmiddlewaretoken")
        return match.group(1)

    def log_in(self, path: str, username: str, password: str) -> requests.Response:
        form = self.request("GET", path)
        expect(form.status_code == 200, f"GET {path} answered {form.status_code}")
        expect("csrftoken" in self.cookies, "the login form set no csrftoken cookie")
        data = {"username": username, "password": password}
        data["csrfmiddlewaretoken"] = self.csrf_token(form.text)
        done = self.request("POST", path, data=data)
        expect(
            done.status_code == 302 and "sessionid" in self.cookies,
            f"POST {path} answered {done.status_code} without a session",
        )
        return done


def http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no HTTP_PROXY for loopback
    return session


def expect(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# --- the check ------------------------------------------------------------------


class Abort(Exception):
    pass


class Checks:
    def __init__(self) -> None:
        self.failed: list[str] = []

    @contextlib.contextmanager
    def step(self, name: str, *, fatal: bool = True) -> Iterator[list[str]]:
        """PASS or FAIL for one step; a fatal failure ends the run (Abort).
        The step may append details to the list it gets."""
        started = time.monotonic()
        details: list[str] = []
        try:
            yield details
        except (CheckFailed, requests.RequestException, subprocess.SubprocessError) as error:
            self.failed.append(name)
            print(f"FAIL  {name}: {error}", flush=True)
            if fatal:
                raise Abort from error
        else:
            note = f" ({'; '.join(details)})" if details else ""
            print(f"PASS  {name}{note} [{time.monotonic() - started:.1f} s]", flush=True)


@dataclass
class Run:
    """One prod-check run: what it started, and what it learnt on the way."""

    stack: Stack
    checks: Checks
    ports: Ports = field(default_factory=Ports.free)
    secrets: dict[str, str] = field(default_factory=dict)  # the operator's .env
    services: dict[str, Service] = field(default_factory=dict)  # rewritten for here
    workdir: str = "/app"  # the image's WORKDIR, which stack.tree stands in for
    image_env: dict[str, str] = field(default_factory=dict)
    image_dirs: list[str] = field(default_factory=list)
    base_env: dict[str, str] = field(default_factory=dict)  # what the container provides

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.ports.web}"

    def env_of(self, name: str, **extra: str) -> dict[str, str]:
        return {**self.base_env, **self.services[name].environment, **extra}

    def alive(self) -> None:
        for process in self.stack.processes:
            if process.popen.poll() is not None:
                raise CheckFailed(f"{process.name} exited with {process.popen.returncode}")

    def manage(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return _run(
            ["python", "manage.py", *args], cwd=self.stack.tree, env=self.env_of("web", **extra)
        )

    def query(self, code: str) -> Any:
        """Run Django code with the web service's environment; its last line printed, as JSON."""
        done = self.manage("shell", "--no-imports", "-c", code)
        return json.loads(done.stdout.strip().splitlines()[-1])


def operator_env(ports: Ports) -> dict[str, str]:
    """What an operator's .env next to docker-compose.yml would hold."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
        "REDIS_PASSWORD": secrets.token_urlsafe(24),
        "METRICS_TOKEN": secrets.token_urlsafe(24),
        "FLOWER_BASIC_AUTH": f"ops:{secrets.token_urlsafe(16)}",
        # Behind a TLS-terminating proxy that sets X-Forwarded-Proto; with it,
        # `check --deploy` has nothing to warn about.
        "SECURE_SSL_REDIRECT": "true",
        "PUBLIC_FLOWER_URL": f"http://127.0.0.1:{ports.flower}",
    }


ORDER_STATE = """
import json
from django.apps import apps
order_id = {order_id}
shipment = apps.get_model("shipping", "Shipment").objects.filter(order_id=order_id).first()
mails = apps.get_model("notifications", "SentEmail").objects.filter(
    subject__startswith=f"Your order #{{order_id}} ")
print(json.dumps({{"shipment": shipment and shipment.status,
                  "sent": sorted(m.kind for m in mails if m.sent_at)}}))
"""

MEDIATOR_STATE = """
import json
from django.apps import apps
outbox = apps.get_model("mediator", "OutboxMessage").objects
print(json.dumps({"poisoned": apps.get_model("mediator", "PoisonedTask").objects.count(),
                  "pending": outbox.filter(status="pending").count(), "events": outbox.count()}))
"""


def check(run: Run) -> None:
    read_compose(run)
    start_stack(run)
    check_health(run)
    customer, operator = seed(run)
    check_strangers(run)
    order_id = customer_cancels_an_order(run, customer)
    check_operator_endpoints(run, operator)
    with run.checks.step("mediator: nothing poisoned, outbox drained", fatal=False) as notes:
        state = wait_until(
            lambda: (s := run.query(MEDIATOR_STATE))["pending"] == 0 and s,
            timeout=60, what="the outbox to drain", alive=run.alive,
        )  # fmt: skip
        expect(state["poisoned"] == 0, f"{state['poisoned']} poisoned tasks")
        notes.append(f"{state['events']} events, order #{order_id} cancelled")
    with run.checks.step("web: /readyz still 200, every process still running", fatal=False):
        expect(Browser(run.web).request("GET", "/readyz").status_code == 200, "not ready")
        run.alive()


def read_compose(run: Run) -> None:
    with run.checks.step("docker-compose.yml: the app services' commands, interpolated") as notes:
        run.workdir, run.image_env, run.image_dirs = dockerfile_facts(ROOT / "Dockerfile")
        run.secrets = operator_env(run.ports)
        hosts = read_compose_file(ROOT / "docker-compose.yml")["services"]
        rewriter = Rewriter(rewrites(run.ports, run.workdir, run.stack.tree), hosts)
        compose = compose_services(run.secrets, ROOT / "docker-compose.yml")
        run.services = {name: rewriter.service(service) for name, service in compose.items()}
        expect(not rewriter.unused(), f"compose no longer has {rewriter.unused()}")
        notes.append(f"rewritten: {', '.join(rewriter.table)}")
    for service in run.services.values():
        print(f"      {service.name}: {' && '.join(shlex.join(s) for s in service.steps)}")
    with run.checks.step("web runs with production settings") as notes:
        env = run.services["web"].environment
        expect(env.get("DJANGO_DEBUG") == "false", f"DJANGO_DEBUG={env.get('DJANGO_DEBUG')!r}")
        expect(env.get("SECRET_KEY") == run.secrets["SECRET_KEY"], "not the random SECRET_KEY")
        expect(env.get("SECURE_SSL_REDIRECT") == "true", "SECURE_SSL_REDIRECT is not on")
        notes.append("DJANGO_DEBUG=false, a random SECRET_KEY, SECURE_SSL_REDIRECT=true")


def start_stack(run: Run) -> None:
    stack, ports, step = run.stack, run.ports, run.checks.step
    with step(f"image tree: the build context, as {run.workdir}") as notes:
        build_context(stack.tree)
        for made in run.image_dirs:  # the Dockerfile's RUN mkdir -p
            (stack.tree / Path(made).relative_to(run.workdir)).mkdir(parents=True, exist_ok=True)
        run.base_env = {
            **run.image_env,
            # The image's Python has the project installed; here the tree comes first.
            "PYTHONPATH": str(stack.tree),
            "PATH": f"{VENV_BIN}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "HOSTNAME": socket.gethostname(),  # as in a container
        }
        notes.append(f"{sum(1 for p in stack.tree.rglob('*') if p.is_file())} files")

    with step(f"PostgreSQL on 127.0.0.1:{ports.postgres}, user shop with a password") as notes:
        stack.postgres = Postgres(ports.postgres, run.secrets["POSTGRES_PASSWORD"])
        notes.append(f"version {stack.postgres.start()}")

    with step(f"Redis on 127.0.0.1:{ports.redis}, refusing clients without the password"):
        stack.redis = RedisServer(port=ports.redis, password=run.secrets["REDIS_PASSWORD"]).start()
        with socket.create_connection(("127.0.0.1", ports.redis), timeout=5) as stranger:
            stranger.sendall(b"PING\r\n")
            answer = stranger.recv(200)
        expect(answer.startswith(b"-NOAUTH"), f"Redis answered {answer!r} without the password")

    # Compose starts the app services together once PostgreSQL and Redis are
    # healthy; web runs its command's steps one after another.
    for name in ("worker", "beat", "flower"):
        (argv,) = run.services[name].steps
        stack.spawn(name, argv, run.env_of(name))
    *setup, server = run.services["web"].steps
    for argv in setup:
        with step(f"web: {shlex.join(argv)}"):
            run.alive()
            _run(argv, cwd=stack.tree, env=run.env_of("web"))
    stack.spawn("web", server, run.env_of("web"))

    with step("web: gunicorn answers /readyz with 200") as notes:
        browser = Browser(run.web)

        def ready() -> requests.Response | None:
            response = browser.request("GET", "/readyz")
            return response if response.status_code == 200 else None

        ready_answer = wait_until(ready, timeout=90, what="/readyz to answer 200", alive=run.alive)
        notes.append(ready_answer.text.strip())


def check_health(run: Run) -> None:
    for name in APP_SERVICES:
        service = run.services[name]
        if service.healthcheck is None:
            continue
        with run.checks.step(f"{name}: compose's health check passes", fatal=False):
            wait_until(
                functools.partial(run_health_check, run, service),
                timeout=90, what=f"{shlex.join(service.healthcheck)} to pass", alive=run.alive,
            )  # fmt: skip

    with run.checks.step("manage.py check --deploy: no warnings", fatal=False) as notes:
        done = run.manage("check", "--deploy", "--fail-level", "WARNING")
        notes.append(done.stdout.strip().splitlines()[-1])


Login = dict[str, str]


def run_health_check(run: Run, service: Service) -> bool:
    assert service.healthcheck is not None
    done = subprocess.run(
        service.healthcheck, cwd=run.stack.tree, env=run.env_of(service.name),
        capture_output=True, timeout=service.healthcheck_timeout + 30,
    )  # fmt: skip
    return done.returncode == 0


def seed(run: Run) -> tuple[Login, Login]:
    customer = {"username": "prodcheck-customer", "password": secrets.token_urlsafe(16)}
    operator = {"username": "prodcheck-operator", "password": secrets.token_urlsafe(16)}
    with run.checks.step("seed_demo: a customer, a staff operator and 2 orders") as notes:
        logins = {
            "DEMO_CUSTOMER_USERNAME": customer["username"],
            "DEMO_CUSTOMER_PASSWORD": customer["password"],
            "DEMO_CUSTOMER_EMAIL": "prodcheck-customer@example.com",
            "DEMO_STAFF_USERNAME": operator["username"],
            "DEMO_STAFF_PASSWORD": operator["password"],
        }
        done = run.manage("seed_demo", "--orders", "2", **logins)
        notes.append(done.stdout.strip().splitlines()[-1])
    return customer, operator


def check_strangers(run: Run) -> None:
    name = "strangers: no page without logging in, plain HTTP sent to HTTPS, foreign Host refused"
    with run.checks.step(name, fatal=False):
        anonymous = Browser(run.web).request("GET", "/orders/")
        expect(
            anonymous.status_code == 302 and "/accounts/login/" in anonymous.headers["Location"],
            f"anonymous GET /orders/ answered {anonymous.status_code}",
        )
        plain = Browser(run.web).request("GET", "/accounts/login/", proxied=False)
        expect(
            plain.status_code == 301 and plain.headers["Location"].startswith("https://"),
            f"plain HTTP answered {plain.status_code} {plain.headers.get('Location')}",
        )
        foreign = http().get(
            f"{run.web}/accounts/login/", headers={"Host": "shop.evil.example"}, timeout=15
        )
        expect(foreign.status_code == 400, f"a foreign Host header got {foreign.status_code}")


def customer_cancels_an_order(run: Run, customer: Login) -> int:
    step, browser = run.checks.step, Browser(run.web)
    with step("customer logs in through the login form") as notes:
        browser.log_in("/accounts/login/", customer["username"], customer["password"])
        for name in ("csrftoken", "sessionid"):
            secure, http_only = browser.flags[name]
            expect(secure, f"the {name} cookie is not Secure")
            expect(name != "sessionid" or http_only, "the session cookie is not HttpOnly")
        notes.append("session and CSRF cookies Secure, session HttpOnly")

    with step("order list shows the customer's orders") as notes:
        page = browser.request("GET", "/orders/")
        expect(page.status_code == 200, f"GET /orders/ answered {page.status_code}")
        order_ids = sorted({int(n) for n in re.findall(r'href="/orders/(\d+)/"', page.text)})
        expect(len(order_ids) == 2, f"expected 2 orders, the page links {order_ids}")
        order_id, other_id = order_ids
        notes.append(f"orders {order_ids}")

    def reached(order_id: int, shipment: str, email: str) -> bool:
        state = run.query(ORDER_STATE.format(order_id=order_id))
        return bool(state["shipment"] == shipment and email in state["sent"])

    with step("worker: each order has its shipment and its confirmation e-mail sent"):
        for oid in order_ids:
            wait_until(
                functools.partial(reached, oid, "pending", "order_confirmation"),
                timeout=60, what=f"order #{oid}'s shipment and e-mail", alive=run.alive,
            )  # fmt: skip

    with step(f"order #{order_id}'s page, and its stylesheet from whitenoise") as notes:
        page = browser.request("GET", f"/orders/{order_id}/")
        expect(page.status_code == 200, f"GET /orders/{order_id}/ answered {page.status_code}")
        expect(f'action="/orders/{order_id}/cancel/"' in page.text, "the page has no cancel form")
        token = browser.csrf_token(page.text)
        css = re.search(r'href="(/static/[^"]+\.css)"', page.text)
        if css is None:
            raise CheckFailed("the page links no stylesheet")
        static = browser.request("GET", css.group(1))
        cache = static.headers.get("Cache-Control", "")
        expect(
            static.status_code == 200 and "immutable" in cache,
            f"GET {css.group(1)} answered {static.status_code} ({cache})",
        )
        notes.append(f"{css.group(1)}: {cache}")

    with step("a cancel without the CSRF token is refused (403)", fatal=False):
        forged = browser.request("POST", f"/orders/{other_id}/cancel/", data={"reason": "forged"})
        expect(forged.status_code == 403, f"answered {forged.status_code}")

    with step(f"customer cancels order #{order_id} with the form's CSRF token"):
        data = {"csrfmiddlewaretoken": token, "reason": "prod-check"}
        done = browser.request("POST", f"/orders/{order_id}/cancel/", data=data)
        expect(done.status_code == 302, f"POST answered {done.status_code}")
        expect(done.headers["Location"] == f"/orders/{order_id}/", done.headers["Location"])
        page = browser.request("GET", f"/orders/{order_id}/")
        expect(f"Order #{order_id} is cancelled" in page.text, "the page does not say cancelled")

    with step(f"worker: order #{order_id}'s shipment cancelled, cancellation e-mail sent"):
        wait_until(
            lambda: reached(order_id, "cancelled", "order_cancellation"),
            timeout=60, what="the shipment cancelled and the e-mail sent", alive=run.alive,
        )  # fmt: skip
        expect(reached(other_id, "pending", "order_confirmation"), f"order #{other_id} changed")

    with step("the customer is kept out of the admin", fatal=False):
        expect(browser.request("GET", "/admin/").status_code == 302, "the admin let them in")
    return order_id


def check_operator_endpoints(run: Run, operator: Login) -> None:
    step, web = run.checks.step, run.web
    proxied = {"X-Forwarded-Proto": "https"}
    bearer = {"Authorization": f"Bearer {run.secrets['METRICS_TOKEN']}"}
    with step(
        "/metrics: 401 without its Bearer token or with a wrong one, 200 with it", fatal=False
    ):
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            refused = http().get(f"{web}/metrics", headers={**proxied, **headers}, timeout=15)
            expect(refused.status_code == 401, f"{headers or 'no token'}: {refused.status_code}")
        served = http().get(f"{web}/metrics", headers={**proxied, **bearer}, timeout=15)
        expect(served.status_code == 200, f"with the token: {served.status_code}")
        expect("mediator_outbox_pending" in served.text, "no mediator_outbox_pending metric")

    flower = f"http://127.0.0.1:{run.ports.flower}"
    user, password = run.secrets["FLOWER_BASIC_AUTH"].split(":", 1)
    node = f"celery@{socket.gethostname()}"

    def workers() -> dict[str, Any]:
        answer = http().get(f"{flower}/api/workers?refresh=1", auth=(user, password), timeout=15)
        listed: dict[str, Any] = answer.json() if answer.status_code == 200 else {}
        return listed if node in listed else {}

    name = "Flower: 401 without basic auth or with a wrong password, lists the worker with it"
    with step(name, fatal=False) as notes:
        for auth in (None, (user, "wrong")):
            refused = http().get(f"{flower}/api/workers", auth=auth, timeout=15)
            expect(refused.status_code == 401, f"auth {auth}: {refused.status_code}")
        listed = wait_until(workers, timeout=60, what=f"Flower to list {node}", alive=run.alive)
        notes.append(f"workers {sorted(listed)}")

    with step("staff operator: the admin, the mediator dashboard, poisoned tasks", fatal=False):
        staff = Browser(web)
        staff.log_in("/admin/login/", operator["username"], operator["password"])
        for path in ("/admin/", "/admin/mediator/dashboard/", "/admin/mediator/poisonedtask/"):
            page = staff.request("GET", path)
            expect(page.status_code == 200, f"GET {path} answered {page.status_code}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    started = time.monotonic()
    checks = Checks()
    stack = Stack()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        check(Run(stack, checks))
    except Abort:
        pass
    except KeyboardInterrupt:
        checks.failed.append("interrupted")
        print("FAIL  interrupted", flush=True)
    except Exception as error:  # a bug here: still stop everything, and say so
        checks.failed.append("prod-check itself")
        print(f"FAIL  prod-check itself: {type(error).__name__}: {error}", flush=True)
    finally:
        # Ctrl-C again must not leave processes behind: stopping is bounded.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if checks.failed:
            stack.print_logs()
        names = [p.name for p in stack.processes]
        killed = stack.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, previous)
    if killed:
        checks.failed.append("stop")
        print(f"FAIL  stop: {', '.join(killed)} needed SIGKILL after SIGTERM", flush=True)
    else:
        print(f"PASS  stop: {', '.join(names) or 'nothing'} exited on SIGTERM; temp dirs removed")
    verdict = "FAIL" if checks.failed else "PASS"
    print(f"prod-check {verdict} in {time.monotonic() - started:.1f} s (wall time)", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
