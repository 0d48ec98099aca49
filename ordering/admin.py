"""The order admin. An order's state is a record here: it changes only through
ordering's services (the cancel action and button send the same CancelOrder
command as the customer's button), so every change publishes its event."""

from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import URLPattern, path, reverse

from mediator import send
from ordering.commands import CancelOrder
from ordering.models import Order, OrderItem
from ordering.services import OrderError, may_cancel_any_order

OPERATOR_REASON = "Cancelled by an operator"


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    extra = 0
    readonly_fields = ["sku", "name", "quantity", "unit_price"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "status", "total", "created_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["=id", "owner__email", "owner__username"]
    date_hierarchy = "created_at"
    # Every field: "cancelled" typed here would refund, restock and tell no
    # one, and another run's id would show its customer's data on this page.
    readonly_fields = [
        "owner", "status", "total", "created_at", "updated_at", "cancelled_at", "cancel_reason",
        "ship_to", "checkout_run_id", "checkout_error",
    ]  # fmt: skip
    inlines = [OrderItemInline]
    list_select_related = ["owner"]
    actions = ["cancel_selected"]
    change_form_template = "admin/ordering/order/change_form.html"

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        """The cancel action's and button's permission (ordering.cancel_order)."""
        return may_cancel_any_order(cast(User, request.user))

    def get_urls(self) -> list[URLPattern]:
        cancel = path(
            "<int:order_id>/cancel/",
            self.admin_site.admin_view(self.cancel_view),
            name="ordering_order_cancel",
        )
        return [cancel, *super().get_urls()]

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        context["can_cancel"] = self.has_cancel_permission(request)
        return super().render_change_form(request, context, *args, **kwargs)

    @admin.action(description="Cancel selected orders", permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        """One transaction per order."""
        cancelled, refused = 0, []
        for order_id in queryset.order_by("pk").values_list("pk", flat=True):
            refusal = self._cancel(request, order_id)
            if refusal is None:
                cancelled += 1
            else:
                refused.append(refusal)
        if cancelled:
            self.message_user(request, f"Cancelled {cancelled} order(s).", messages.SUCCESS)
        if refused:
            self.message_user(
                request, f"Not cancelled ({len(refused)}): " + " ".join(refused), messages.WARNING
            )

    def cancel_view(self, request: HttpRequest, order_id: int) -> HttpResponse:
        """The change page's "Cancel this order" button."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        refusal = self._cancel(request, order_id)
        if refusal is None:
            self.message_user(request, f"Cancelled order #{order_id}.", messages.SUCCESS)
        else:
            self.message_user(request, refusal, messages.WARNING)
        return HttpResponseRedirect(reverse("admin:ordering_order_change", args=[order_id]))

    def _cancel(self, request: HttpRequest, order_id: int) -> str | None:
        """Send CancelOrder as the operator; the domain's refusal, if any."""
        operator = cast(User, request.user)
        try:
            send(CancelOrder(order_id=order_id, by_user_id=operator.pk, reason=OPERATOR_REASON))
        except OrderError as refusal:
            return str(refusal)
        return None
