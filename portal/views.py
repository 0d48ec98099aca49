"""Customer pages. Thin: reads come from portal.pages; changes are commands
(ordering.commands), sent to their handler in this request."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from mediator import send
from ordering.catalogue import DEMO_CATALOGUE
from ordering.commands import CancelOrder, PlaceDemoOrder
from ordering.models import Order
from ordering.selectors import orders_of
from ordering.services import OrderError
from portal.pages import order_page


class AuthenticatedRequest(HttpRequest):
    user: User


def _own_order(request: AuthenticatedRequest, order_id: int) -> Order:
    # Someone else's order is a 404, never a 403: its existence is not revealed.
    return get_object_or_404(orders_of(request.user), pk=order_id)


@login_required
@require_GET
def order_list(request: AuthenticatedRequest) -> HttpResponse:
    page = Paginator(orders_of(request.user), 10).get_page(request.GET.get("page"))
    return render(
        request, "portal/order_list.html", {"page": page, "catalogue": DEMO_CATALOGUE.values()}
    )


@login_required
@require_POST
def place_demo_order(request: AuthenticatedRequest) -> HttpResponse:
    try:
        quantity = int(request.POST.get("quantity", "1"))
    except ValueError:
        quantity = 0
    try:
        order = send(
            PlaceDemoOrder(
                owner_id=request.user.pk, sku=request.POST.get("sku", "")[:64], quantity=quantity
            )
        )
    except OrderError as refusal:
        messages.error(request, str(refusal))
        return redirect("orders:order-list")
    messages.success(request, f"Order #{order.pk} is placed.")
    return redirect("orders:order-detail", order_id=order.pk)


@login_required
@require_GET
def order_detail(request: AuthenticatedRequest, order_id: int) -> HttpResponse:
    order = _own_order(request, order_id)
    return render(request, "portal/order_detail.html", {"page": order_page(order)})


@login_required
@require_GET
def order_live(request: AuthenticatedRequest, order_id: int) -> HttpResponse:
    """The live part of the order page, polled by live.js until settled."""
    page = order_page(_own_order(request, order_id))
    response = render(request, "portal/_order_live.html", {"page": page})
    response["X-Live-Settled"] = "true" if page.settled else "false"
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def cancel_order(request: AuthenticatedRequest, order_id: int) -> HttpResponse:
    order = _own_order(request, order_id)
    try:
        send(
            CancelOrder(
                order_id=order.pk, by_user_id=request.user.pk, reason=request.POST.get("reason", "")
            )
        )
    except OrderError as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(
            request,
            f"Order #{order.pk} is cancelled. We are stopping the shipment and will e-mail you.",
        )
    return redirect("orders:order-detail", order_id=order.pk)
