from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ordering import services
from ordering.selectors import orders_of


class AuthenticatedRequest(HttpRequest):
    user: User


@login_required
def order_list(request: AuthenticatedRequest) -> HttpResponse:
    page = Paginator(orders_of(request.user), 20).get_page(request.GET.get("page"))
    return render(request, "ordering/order_list.html", {"page": page})


@login_required
def order_detail(request: AuthenticatedRequest, order_id: int) -> HttpResponse:
    order = get_object_or_404(orders_of(request.user).prefetch_related("items"), pk=order_id)
    return render(request, "ordering/order_detail.html", {"order": order})


@login_required
@require_POST
def cancel_order(request: AuthenticatedRequest, order_id: int) -> HttpResponse:
    order = get_object_or_404(orders_of(request.user), pk=order_id)
    try:
        services.cancel_order(order=order, by=request.user, reason=request.POST.get("reason", ""))
    except services.OrderError as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(
            request,
            f"Order #{order.pk} is cancelled. We are stopping the shipment and will e-mail you.",
        )
    return redirect("ordering:order-detail", order_id=order.pk)
