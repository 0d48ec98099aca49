"""Customer pages. Thin: reads come from portal.pages; changes are commands
(ordering.commands), sent to their handler in this request."""

import hashlib

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from mediator import Command, send
from ordering.catalogue import DEMO_CATALOGUE
from ordering.commands import CancelOrder, CheckOutDemoOrder, PlaceDemoOrder
from ordering.models import Order
from ordering.payment_provider import TEST_TOKENS
from ordering.selectors import orders_of
from ordering.services import OrderError
from portal.pages import order_page
from shipping.services import SHIPS_TO


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
        request,
        "portal/order_list.html",
        {
            "page": page,
            "catalogue": DEMO_CATALOGUE.values(),
            "cards": TEST_TOKENS.items(),
            "countries": [*SHIPS_TO.items(), ("US", "United States (we do not ship there)")],
        },
    )


@login_required
@require_POST
def place_demo_order(request: AuthenticatedRequest) -> HttpResponse:
    command = PlaceDemoOrder(
        owner_id=request.user.pk, sku=request.POST.get("sku", "")[:64], quantity=_quantity(request)
    )
    return _place(request, command, "Order #{} is placed.")


@login_required
@require_POST
def check_out(request: AuthenticatedRequest) -> HttpResponse:
    """A paid order: the checkout saga reserves, charges, books and confirms,
    or undoes what it did; the order page shows each step as it happens."""
    command = CheckOutDemoOrder(
        owner_id=request.user.pk,
        sku=request.POST.get("sku", "")[:64],
        quantity=_quantity(request),
        payment_token=request.POST.get("payment_token", "")[:64],
        ship_to=request.POST.get("ship_to", "")[:8],
    )
    return _place(request, command, "Order #{} is being checked out.")


def _place(request: AuthenticatedRequest, command: Command, done: str) -> HttpResponse:
    """Send an order-placing command: to the new order's page, or back to the
    list with the domain's refusal."""
    try:
        order = send(command)
    except OrderError as refusal:
        messages.error(request, str(refusal))
        return redirect("orders:order-list")
    messages.success(request, done.format(order.pk))
    return redirect("orders:order-detail", order_id=order.pk)


def _quantity(request: HttpRequest) -> int:
    try:
        return int(request.POST.get("quantity", "1"))
    except ValueError:
        return 0


@login_required
@require_GET
def order_detail(request: AuthenticatedRequest, order_id: int) -> HttpResponse:
    order = _own_order(request, order_id)
    return render(request, "portal/order_detail.html", {"page": order_page(order)})


@login_required
@require_GET
def order_live(request: AuthenticatedRequest, order_id: int) -> HttpResponse:
    """The live part of the order page, polled by live.js until settled: a
    fixed number of queries, and 304 Not Modified while nothing changed."""
    page = order_page(_own_order(request, order_id))
    response = render(request, "portal/_order_live.html", {"page": page})
    etag = f'"{hashlib.sha256(response.content).hexdigest()[:32]}"'
    if etag in request.headers.get("If-None-Match", ""):
        response = HttpResponseNotModified()
    response["ETag"] = etag
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
