"""docker-compose.yml cannot be run here (no Docker engine), so check what can
go stale without one: commands name real modules, env vars are ones we read."""

from __future__ import annotations

import importlib
import shlex

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
    assert set(services) == {"postgres", "redis", *APP_SERVICES}
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


def test_readme_documents_every_env_var_the_settings_read() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = sorted(var for var in settings_env_vars() if f"`{var}`" not in readme)
    assert not missing, f"README's configuration table lacks {missing}"
