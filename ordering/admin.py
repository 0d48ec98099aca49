from typing import cast

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest

from mediator import send
from ordering.commands import CancelOrder
from ordering.models import Order, OrderItem
from ordering.services import OrderError


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    extra = 0
    readonly_fields = ["sku", "name", "quantity", "unit_price"]
    can_delete = False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "status", "total", "created_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["=id", "owner__email", "owner__username"]
    date_hierarchy = "created_at"
    readonly_fields = ["owner", "total", "created_at", "updated_at", "cancelled_at"]
    inlines = [OrderItemInline]
    list_select_related = ["owner"]
    actions = ["cancel_selected"]

    @admin.action(description="Cancel selected orders", permissions=["change"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        """The same command as the customer's button, one transaction per order."""
        cancelled, refused = 0, []
        operator = cast(User, request.user)
        for order_id in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                send(
                    CancelOrder(
                        order_id=order_id, by_user_id=operator.pk, reason="Cancelled by an operator"
                    )
                )
            except OrderError as refusal:
                refused.append(str(refusal))
            else:
                cancelled += 1
        if cancelled:
            self.message_user(request, f"Cancelled {cancelled} order(s).", messages.SUCCESS)
        if refused:
            self.message_user(
                request, f"Not cancelled ({len(refused)}): " + " ".join(refused), messages.WARNING
            )
