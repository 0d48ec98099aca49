from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from ordering.models import Order


def seed(*args: str, **env: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_prints_logins() -> None:
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
def test_seed_demo_tops_up_and_takes_credentials_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
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
