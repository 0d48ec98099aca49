from django.db import models


class ShipmentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DISPATCHED = "dispatched", "Dispatched"
    CANCELLED = "cancelled", "Cancelled"


class Shipment(models.Model):
    """One per order. The order is referenced by id only: shipping learns about
    orders from their events and never reads the ordering app's tables."""

    order_id = models.PositiveBigIntegerField(unique=True)
    ship_to = models.CharField(max_length=2, blank=True, help_text="Country code, when booked.")
    status = models.CharField(
        max_length=16, choices=ShipmentStatus.choices, default=ShipmentStatus.PENDING, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Shipment for order #{self.order_id} ({self.status})"
