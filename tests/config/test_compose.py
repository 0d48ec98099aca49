"""docker-compose.yml cannot be run here (no Docker engine), so check what can
go stale without one: commands name real modules, env vars are ones we read."""

from __future__ import annotations

import importlib
import re
import shlex
import subprocess

import pytest
import yaml
from django.core.management import get_commands
from flower.options import options as flower_option_set

from tests.config.env_vars import settings_env_vars
from tests.support import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
APP_SERVICES = ["web", "worker", "beat", "flower"]
CELERY_SUBCOMMANDS = {"worker", "beat", "flower", "inspect"}


def commands_of(service: dict) -> list[list[str]]:
    command = service["command"]
    argv = command if isinstance(command, list) else shlex.split(command)
    if argv[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in argv[2].split("&&")]
    return [argv]


def check_command(argv: list[str]) -> None:
    program = argv[0]
    if program == "gunicorn":
        module, _, attr = argv[1].partition(":")
        assert callable(getattr(importlib.import_module(module), attr))
    elif program == "celery":
        assert argv[1] == "-A"
        app = importlib.import_module(argv[2]).celery_app
        assert app.main == argv[2]
        assert argv[3] in CELERY_SUBCOMMANDS, argv
    elif program == "python":
        assert argv[1] == "manage.py"
        assert (ROOT / "manage.py").exists()
        assert argv[2] in get_commands(), f"unknown management command {argv[2]}"
    else:
        pytest.fail(f"unexpected program {program!r} in compose command {argv}")


def test_compose_has_the_services_with_health_checks() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"postgres", "redis", "rabbitmq", *APP_SERVICES}
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_compose_commands_name_real_modules(name: str) -> None:
    for argv in commands_of(COMPOSE["services"][name]):
        check_command(argv)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_compose_env_vars_are_ones_the_app_reads(name: str) -> None:
    read = settings_env_vars()
    flower_vars = {
        f"FLOWER_{option.upper().replace('-', '_')}" for option in flower_option_set._options
    }
    for var in COMPOSE["services"][name]["environment"]:
        assert var in read or (name == "flower" and var in flower_vars), (
            f"{name} sets {var}, which nothing reads"
        )


def test_the_configuration_page_documents_every_env_var_the_settings_read() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    missing = sorted(var for var in settings_env_vars() if f"`{var}`" not in page)
    assert not missing, f"docs/configuration.md's table of variables lacks {missing}"


def published(service: dict) -> list[str]:
    return [str(port) for port in service.get("ports", [])]


def test_only_the_web_port_is_published_on_every_interface() -> None:
    """Flower's API can run any task (cancel any order, refund) and shows task
    arguments; Redis, PostgreSQL and RabbitMQ's AMQP need not leave the
    compose network, and RabbitMQ's management UI listens on loopback."""
    services = COMPOSE["services"]
    assert published(services["flower"]) == ["${FLOWER_BIND:-127.0.0.1}:5555:5555"]
    assert published(services["rabbitmq"]) == ["${RABBITMQ_MANAGEMENT_BIND:-127.0.0.1}:15672:15672"]
    for name in ("redis", "postgres", "worker", "beat"):
        assert published(services[name]) == [], f"{name} publishes a port"
    for name, service in services.items():
        if name == "web":
            continue
        for port in published(service):
            host = port.rsplit(":", 2)[0] if port.count(":") >= 2 else "0.0.0.0"
            default = re.fullmatch(r"\$\{\w+:-([^}]*)\}", host)
            assert (default.group(1) if default else host) == "127.0.0.1", f"{name}: {port}"


def test_rabbitmq_is_an_opt_in_profile_the_app_waits_for_only_when_it_runs() -> None:
    services = COMPOSE["services"]
    assert services["rabbitmq"]["profiles"] == ["rabbitmq"]
    assert [name for name, s in services.items() if "profiles" in s] == ["rabbitmq"]
    assert services["rabbitmq"]["healthcheck"]["test"][:2] == ["CMD", "rabbitmq-diagnostics"]
    for name in APP_SERVICES:
        service = COMPOSE["services"][name]
        assert service["depends_on"]["rabbitmq"] == {
            "condition": "service_healthy", "required": False,
        }  # fmt: skip
        assert service["environment"]["CELERY_BROKER_URL"] == "${CELERY_BROKER_URL:-}"
    guide = (ROOT / "docs" / "operations.md").read_text()
    assert "docker compose --profile rabbitmq up" in guide
    assert "CELERY_BROKER_URL='amqp://shop:" in guide


def rabbitmq_entrypoint(password: str) -> subprocess.CompletedProcess[str]:
    """The rabbitmq service's entrypoint and command, run as the container
    would (Compose's $$ is a $), with docker-entrypoint.sh a stub."""
    service = COMPOSE["services"]["rabbitmq"]
    argv = [part.replace("$$", "$") for part in [*service["entrypoint"], *service["command"]]]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=10, check=False,
        env={"PATH": "/usr/bin:/bin", "RABBITMQ_DEFAULT_PASS": password},
    )  # fmt: skip


def test_rabbitmq_refuses_to_start_without_a_password() -> None:
    """The default user is ours, not guest, and its password comes from
    RABBITMQ_PASSWORD; without one the container exits at once. (Not a
    required ${...:?}: Compose interpolates every service, so that would
    refuse the default stack too.)"""
    env = COMPOSE["services"]["rabbitmq"]["environment"]
    assert env["RABBITMQ_DEFAULT_USER"] not in ("", "guest")
    assert env["RABBITMQ_DEFAULT_PASS"] == "${RABBITMQ_PASSWORD:-}"
    refused = rabbitmq_entrypoint("")
    assert refused.returncode == 1
    assert "set RABBITMQ_PASSWORD" in refused.stderr
    started = rabbitmq_entrypoint("s3cret")
    assert "set RABBITMQ_PASSWORD" not in started.stderr
    assert "docker-entrypoint.sh" in started.stderr  # it went on to the image's entrypoint


def test_redis_asks_for_a_password_that_every_app_service_sends() -> None:
    redis = COMPOSE["services"]["redis"]
    assert "--requirepass" in redis["command"]
    password = redis["command"][redis["command"].index("--requirepass") + 1]
    assert password.startswith("${REDIS_PASSWORD:?"), "no default password"
    for name in APP_SERVICES:
        url = COMPOSE["services"][name]["environment"]["REDIS_URL"]
        assert url.startswith("redis://:${REDIS_PASSWORD:?"), f"{name} connects without it"


def test_metrics_need_a_token_in_compose() -> None:
    for name in APP_SERVICES:
        token = COMPOSE["services"][name]["environment"]["METRICS_TOKEN"]
        assert token.startswith("${METRICS_TOKEN:?"), f"{name}: /metrics would be open"


def test_compose_believes_no_forwarded_proto_unless_told() -> None:
    """Port 8000 is published directly: X-Forwarded-Proto is anyone's to send."""
    for name in APP_SERVICES:
        env = COMPOSE["services"][name]["environment"]
        assert env["BEHIND_TLS_PROXY"] == "${BEHIND_TLS_PROXY:-false}", name
        assert env["SECURE_HSTS_PRELOAD"] == "${SECURE_HSTS_PRELOAD:-false}", name


def test_the_web_health_check_asks_readyz_without_credentials() -> None:
    test = COMPOSE["services"]["web"]["healthcheck"]["test"]
    assert "http://127.0.0.1:8000/readyz" in test[-1]
    assert "Authorization" not in test[-1]  # the public answer's status code is enough
