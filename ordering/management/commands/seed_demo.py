import os
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandParser

from ordering.catalogue import DEMO_CATALOGUE
from ordering.models import Order
from ordering.services import place_order, restock

DEMO_STOCK = 100  # units of each product the seeder keeps on the shelf


class Command(BaseCommand):
    help = (
        "Create a demo customer, a staff operator and N orders for the customer. "
        "Idempotent: a second run tops up to N orders and changes nothing else."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--orders", type=int, default=5, help="orders the demo customer has")

    def handle(self, *args: Any, orders: int, **options: Any) -> None:
        customer_password = os.environ.get("DEMO_CUSTOMER_PASSWORD", "customer-demo")
        staff_password = os.environ.get("DEMO_STAFF_PASSWORD", "operator-demo")
        customer = self._user(
            username=os.environ.get("DEMO_CUSTOMER_USERNAME", "customer"),
            password=customer_password,
            email=os.environ.get("DEMO_CUSTOMER_EMAIL", "customer@example.com"),
            staff=False,
        )
        operator = self._user(
            username=os.environ.get("DEMO_STAFF_USERNAME", "operator"),
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
        self.stdout.write(f"Demo customer: {customer.username} / {customer_password}")
        self.stdout.write(f"Demo operator (staff): {operator.username} / {staff_password}")
        self.stdout.write(f"Orders: {created} created, {existing + created} in all for {customer}.")

    def _user(self, *, username: str, password: str, email: str, staff: bool) -> User:
        user, created = User.objects.get_or_create(
            username=username,
            defaults={"email": email, "is_staff": staff, "is_superuser": staff},
        )
        if created or not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        return user
