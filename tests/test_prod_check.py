"""make prod-check runs docker-compose.yml's own commands: only the addresses
it rewrites differ, and a compose file it does not know how to run fails it."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import prod_check
from scripts.prod_check import CheckFailed, Ports, Rewriter, compose_services, interpolate
from tests.config.test_compose import APP_SERVICES, COMPOSE, commands_of
from tests.support import ROOT

PORTS = Ports(web=18000, flower=15555, postgres=15432, redis=16379)
TREE = Path("/tmp/prod-check-test/app")


def rewritten_services() -> tuple[dict[str, prod_check.Service], Rewriter]:
    rewriter = Rewriter(prod_check.rewrites(PORTS, "/app", TREE), COMPOSE["services"])
    services = compose_services(prod_check.operator_env(PORTS), ROOT / "docker-compose.yml")
    return {name: rewriter.service(s) for name, s in services.items()}, rewriter


def test_the_commands_are_compose_s_with_only_addresses_rewritten() -> None:
    services, rewriter = rewritten_services()
    assert tuple(services) == tuple(APP_SERVICES)
    assert rewriter.unused() == []
    for name in APP_SERVICES:
        ours, theirs = services[name].steps, commands_of(COMPOSE["services"][name])
        assert [len(step) for step in ours] == [len(step) for step in theirs], name
        for our_step, their_step in zip(ours, theirs, strict=True):
            for our_arg, their_arg in zip(our_step, their_step, strict=True):
                assert our_arg == their_arg or rewriter(their_arg) == our_arg, (name, their_arg)
    assert services["web"].steps[-1][-3:] == ["127.0.0.1:18000", "--workers", "2"]
    assert "--address=127.0.0.1" in services["flower"].steps[0]


def test_the_environment_is_compose_s_with_the_operator_s_values() -> None:
    services, _ = rewritten_services()
    web = services["web"].environment
    assert set(web) == set(COMPOSE["services"]["web"]["environment"])
    assert web["DJANGO_DEBUG"] == "false"
    assert web["SECURE_SSL_REDIRECT"] == "true"
    assert web["DATABASE_URL"].startswith("postgres://shop:")
    assert web["DATABASE_URL"].endswith("@127.0.0.1:15432/shop")
    assert web["REDIS_URL"].endswith("@127.0.0.1:16379/0")
    assert "FLOWER_BASIC_AUTH" in services["flower"].environment
    assert services["worker"].healthcheck is not None
    assert services["worker"].healthcheck[:2] == ["sh", "-c"]
    assert "$HOSTNAME" in services["worker"].healthcheck[2]  # compose's $$ is one $


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A:-x}", {}, "x"),
        ("${A:-x}", {"A": ""}, "x"),
        ("${A-x}", {"A": ""}, ""),
        ("${A:-x}", {"A": "a"}, "a"),
        ("${A:?needed}/$A/${A}", {"A": "a"}, "a/a/a"),
        ("$$HOSTNAME", {"HOSTNAME": "no"}, "$HOSTNAME"),
        ("${A}", {}, ""),
    ],
)
def test_interpolation_reads_variables_as_compose_does(
    text: str, env: dict[str, str], expected: str
) -> None:
    assert interpolate(text, env) == expected


def test_a_required_variable_left_unset_fails_naming_it() -> None:
    with pytest.raises(CheckFailed, match=r"A \(set A\), B"):
        interpolate("${A:?set A} ${B?}", {})


@pytest.mark.parametrize(
    "text", ["--bind 0.0.0.0:9000", "postgres://shop@postgres:5433/shop", "http://flower:5555/"]
)
def test_an_address_prod_check_does_not_know_fails_it(text: str) -> None:
    rewriter = Rewriter(prod_check.rewrites(PORTS, "/app", TREE), COMPOSE["services"])
    with pytest.raises(CheckFailed, match="does not know how to run"):
        rewriter(text)
