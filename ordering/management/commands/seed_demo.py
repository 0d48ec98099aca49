import os
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ordering.catalogue import DEMO_CATALOGUE
from ordering.models import Order
from ordering.services import place_order, restock

DEMO_STOCK = 100  # units of each product the seeder keeps on the shelf
# Printed here and in the README: for a local demo (DEBUG on) only.
DEMO_PASSWORDS = {"customer": "customer-demo", "staff": "operator-demo"}


class Command(BaseCommand):
    help = (
        "Create a demo customer, a staff operator and N orders for the customer. "
        "Idempotent: a second run tops up to N orders and changes nothing else. "
        "With DEBUG off it needs passwords of your own (DEMO_STAFF_PASSWORD, "
        "DEMO_CUSTOMER_PASSWORD)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--orders", type=int, default=5, help="orders the demo customer has")
        parser.add_argument(
            "--admin-password",
            help="the staff operator's (a superuser's) password; DEMO_STAFF_PASSWORD is "
            "better (a command line is visible to every user of the machine in ps). "
            "Required with DEBUG off.",
        )
        parser.add_argument(
            "--customer-password",
            help="the demo customer's password; or DEMO_CUSTOMER_PASSWORD. "
            "Required with DEBUG off.",
        )

    def handle(
        self,
        *args: Any,
        orders: int,
        admin_password: str | None = None,
        customer_password: str | None = None,
        **options: Any,
    ) -> None:
        customer_name = os.environ.get("DEMO_CUSTOMER_USERNAME", "customer")
        staff_name = os.environ.get("DEMO_STAFF_USERNAME", "operator")
        staff_password, staff_refused = self._password(
            "staff", staff_name, admin_password, "--admin-password", "DEMO_STAFF_PASSWORD"
        )
        customer_password, customer_refused = self._password(
            "customer", customer_name, customer_password, "--customer-password",
            "DEMO_CUSTOMER_PASSWORD",
        )  # fmt: skip
        if staff_refused or customer_refused:
            raise CommandError(f"{staff_refused} {customer_refused}".strip())
        customer = self._user(
            username=customer_name,
            password=customer_password,
            email=os.environ.get("DEMO_CUSTOMER_EMAIL", "customer@example.com"),
            staff=False,
        )
        operator = self._user(
            username=staff_name,
            password=staff_password,
            email=os.environ.get("DEMO_STAFF_EMAIL", "operator@example.com"),
            staff=True,
        )
        existing = Order.objects.filter(owner=customer).count()
        products = list(DEMO_CATALOGUE.values())
        for n in range(existing, orders):
            place_order(owner=customer, items=[products[n % len(products)]])
        for product in products:
            restock(sku=product.sku, at_least=DEMO_STOCK)
        created = max(0, orders - existing)
        if not settings.DEBUG:  # an operator's own passwords stay out of the logs
            customer_password = staff_password = "(the password you gave)"
        self.stdout.write(f"Demo customer: {customer.username} / {customer_password}")
        self.stdout.write(f"Demo operator (staff): {operator.username} / {staff_password}")
        self.stdout.write(f"Orders: {created} created, {existing + created} in all for {customer}.")

    def _password(
        self, who: str, username: str, given: str | None, option: str, variable: str
    ) -> tuple[str, str]:
        """The password to set (given, from the environment, or with DEBUG on
        the demo's), or why not. With DEBUG off no account gets a password
        printed in this file, and one of your own must pass AUTH_PASSWORD_VALIDATORS."""
        password = given or os.environ.get(variable, "")
        if settings.DEBUG:
            return password or DEMO_PASSWORDS[who], ""
        if not password or password in DEMO_PASSWORDS.values():
            return "", (
                f"DEBUG is off: seed_demo will not give the {who} account {username!r} "
                "the demo password everyone can read in its source. Set "
                f"{variable} (or pass {option}) to a password of your own, or set "
                "DJANGO_DEBUG=true for a local demo."
            )
        try:
            validate_password(password, User(username=username))
        except ValidationError as weak:
            reasons = " ".join(weak.messages)
            return "", f"The {who} password ({variable} / {option}) is too weak: {reasons}"
        return password, ""

    def _user(self, *, username: str, password: str, email: str, staff: bool) -> User:
        user, created = User.objects.get_or_create(
            username=username,
            defaults={"email": email, "is_staff": staff, "is_superuser": staff},
        )
        if created or not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        return user
