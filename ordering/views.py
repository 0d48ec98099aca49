from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

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
