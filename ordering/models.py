from decimal import Decimal

from django.conf import settings
from django.db import models


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Checking out"  # a paid order while its checkout saga runs
    FAILED = "failed", "Checkout failed"  # the checkout was undone (stock released, refunded)
    PLACED = "placed", "Placed"
    SHIPPED = "shipped", "Shipped"
    CANCELLED = "cancelled", "Cancelled"


class Order(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders"
    )
    status = models.CharField(
        max_length=16, choices=OrderStatus.choices, default=OrderStatus.PLACED, db_index=True
    )
    total = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=200, blank=True)
    ship_to = models.CharField(max_length=2, blank=True, help_text="Country code (paid orders).")
    checkout_run_id = models.UUIDField(
        null=True, blank=True, help_text="The checkout saga's run (paid orders)."
    )
    checkout_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # Cancelling someone else's order (an operator's): a right of its own,
        # not implied by being staff or by the admin's change permission.
        permissions = [("cancel_order", "Can cancel any customer's order")]

    def __str__(self) -> str:
        return f"Order #{self.pk} ({self.status})"


class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    sku = models.CharField(max_length=40)
    name = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quantity__gt=0), name="orderitem_quantity_gt_0"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.name}"

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


class StockItem(models.Model):
    """What the shop has on its shelf, per product."""

    sku = models.CharField(max_length=40, unique=True)
    on_hand = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.sku}: {self.on_hand} on hand"


class StockReservation(models.Model):
    """The stock a paid order took off the shelf (its items' quantities)."""

    order = models.OneToOneField(Order, on_delete=models.CASCADE, related_name="reservation")
    reserved_at = models.DateTimeField(auto_now_add=True)
    released_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Stock for order #{self.order_id}" + (" (released)" if self.released_at else "")


class PaymentStatus(models.TextChoices):
    CAPTURED = "captured", "Captured"
    REFUNDED = "refunded", "Refunded"


class Payment(models.Model):
    """Our record of the provider's charge for an order."""

    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="payment")
    charge_id = models.CharField(max_length=64, unique=True)
    idempotency_key = models.CharField(max_length=100, unique=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(
        max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.CAPTURED
    )
    captured_at = models.DateTimeField(auto_now_add=True)
    refunded_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.charge_id} {self.amount} ({self.status})"
