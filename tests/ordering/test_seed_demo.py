import os
import subprocess
import sys
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from ordering.models import Order
from tests.support import ROOT

STRONG = {"staff": "Plinth-Marmot-Quarry-42", "customer": "Velvet-Anchor-Tundra-17"}


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def debug_on(settings: Any) -> None:
    settings.DEBUG = True  # `make run`'s local demo


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_prints_logins(debug_on: None) -> None:
    first = seed("--orders", "3")
    second = seed("--orders", "3")
    User = get_user_model()
    assert User.objects.filter(username="customer", is_staff=False).count() == 1
    assert User.objects.filter(username="operator", is_staff=True).count() == 1
    assert Order.objects.filter(owner__username="customer").count() == 3
    assert "customer / customer-demo" in first
    assert "operator / operator-demo" in first
    assert "0 created, 3 in all" in second
    assert User.objects.get(username="customer").check_password("customer-demo")


@pytest.mark.django_db
def test_seed_demo_tops_up_and_takes_credentials_from_env(
    debug_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_STAFF_USERNAME", "boss")
    monkeypatch.setenv("DEMO_STAFF_PASSWORD", "s3cret-boss")
    seed("--orders", "1")
    out = seed("--orders", "4")
    assert "3 created, 4 in all" in out
    assert "boss / s3cret-boss" in out
    assert get_user_model().objects.get(username="boss").check_password("s3cret-boss")
    order = Order.objects.filter(owner__username="customer").first()
    assert order is not None
    assert order.total > 0
    assert order.items.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("env", "args", "says"),
    [
        ({}, [], "Set DEMO_STAFF_PASSWORD (or pass --admin-password)"),
        ({"DEMO_STAFF_PASSWORD": STRONG["staff"]}, [], "Set DEMO_CUSTOMER_PASSWORD"),
        ({"DEMO_CUSTOMER_PASSWORD": STRONG["customer"]}, ["--admin-password", "operator-demo"],
         "will not give the staff account 'operator' the demo password"),
        ({"DEMO_CUSTOMER_PASSWORD": STRONG["customer"]}, ["--admin-password", "12345678"],
         "The staff password (DEMO_STAFF_PASSWORD / --admin-password) is too weak: "
         "This password is too common."),
    ],
)  # fmt: skip
def test_with_debug_off_seed_demo_refuses_known_or_weak_passwords_and_creates_nobody(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], args: list[str], says: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(CommandError) as refused:
        seed(*args)
    assert says in str(refused.value)
    assert not get_user_model().objects.exists()
    assert not Order.objects.exists()


@pytest.mark.django_db
def test_with_debug_off_seed_demo_takes_passwords_of_your_own_and_prints_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMO_CUSTOMER_PASSWORD", STRONG["customer"])
    out = seed("--orders", "1", "--admin-password", STRONG["staff"])
    operator = get_user_model().objects.get(username="operator")
    assert operator.is_superuser
    assert operator.check_password(STRONG["staff"])
    assert get_user_model().objects.get(username="customer").check_password(STRONG["customer"])
    assert STRONG["staff"] not in out
    assert STRONG["customer"] not in out
    assert "operator / (the password you gave)" in out


def test_manage_py_seed_demo_in_production_refuses_the_demo_superuser(tmp_path: Any) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "seed_demo"],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_DEBUG": "false",
            "SECRET_KEY": "k" * 50,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "CommandError: DEBUG is off: seed_demo will not give the staff account" in result.stderr
    assert "Set DEMO_STAFF_PASSWORD (or pass --admin-password)" in result.stderr
    assert "Set DEMO_CUSTOMER_PASSWORD (or pass --customer-password)" in result.stderr
