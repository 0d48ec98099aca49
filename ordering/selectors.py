from django.contrib.auth.models import User
from django.db.models import QuerySet

from ordering.models import Order


def orders_of(user: User) -> QuerySet[Order]:
    return Order.objects.filter(owner=user).order_by("-created_at", "-id")
