"""Guessing passwords at the customer and the admin login, as an attacker would:
after LOGIN_FAILURE_LIMIT (5) failures for one username from one address the
pair is locked out (429) for the cool-off, even with the right password; the
real user from elsewhere still logs in."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db

LIMIT = 5
ATTACKER = "203.0.113.7"
USER_AT_HOME = "198.51.100.20"
LOGINS = {"customer": "login", "admin": "admin:login"}


@pytest.fixture
def victim() -> User:
    return User.objects.create_user("victim", "v@example.com", "right-horse-battery", is_staff=True)


def attempt(client: Client, which: str, password: str, address: str = ATTACKER, **headers: str):
    return client.post(
        reverse(LOGINS[which]),
        {"username": "victim", "password": password},
        REMOTE_ADDR=address,
        headers=headers,
    )


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("which", LOGINS)
def test_five_wrong_passwords_lock_that_username_from_that_address(
    client: Client, victim: User, which: str
) -> None:
    answers = [attempt(client, which, f"guess-{n}") for n in range(LIMIT)]
    assert [a.status_code for a in answers[:-1]] == [200] * (LIMIT - 1)  # the form, with its error
    assert "correct username and password" in answers[0].content.decode()
    assert answers[-1].status_code == 429  # the fifth failure locks

    right = attempt(client, which, "right-horse-battery")
    assert right.status_code == 429
    assert "Too many failed logins" in right.content.decode()
    assert not logged_in(client)

    # The real user, elsewhere, is not locked out by the attacker.
    home = Client()
    assert attempt(home, which, "right-horse-battery", USER_AT_HOME).status_code == 302
    assert logged_in(home)


def test_a_forged_forwarded_for_header_does_not_buy_more_guesses(
    client: Client, victim: User
) -> None:
    for n in range(LIMIT):
        attempt(client, "customer", f"guess-{n}", **{"X-Forwarded-For": f"10.0.0.{n}"})
    forged = {"X-Forwarded-For": "10.0.1.1"}
    assert attempt(client, "customer", "right-horse-battery", **forged).status_code == 429


def test_the_lock_ends_after_the_cool_off(client: Client, victim: User) -> None:
    for n in range(LIMIT):
        attempt(client, "admin", f"guess-{n}")
    assert attempt(client, "admin", "right-horse-battery").status_code == 429
    # Fifteen minutes pass (LOGIN_COOLOFF_MINUTES).
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=15, seconds=1))
    assert attempt(client, "admin", "right-horse-battery").status_code == 302
    assert logged_in(client)


def test_a_successful_login_forgets_earlier_failures(client: Client, victim: User) -> None:
    for n in range(LIMIT - 1):
        attempt(client, "customer", f"typo-{n}")
    assert attempt(client, "customer", "right-horse-battery").status_code == 302
    client.logout()
    for n in range(LIMIT - 1):
        assert attempt(client, "customer", f"typo-again-{n}").status_code == 200
