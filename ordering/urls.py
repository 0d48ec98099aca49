from django.urls import path

from ordering import views

app_name = "ordering"

urlpatterns = [
    path("", views.order_list, name="order-list"),
    path("<int:order_id>/", views.order_detail, name="order-detail"),
    path("<int:order_id>/cancel/", views.cancel_order, name="order-cancel"),
]
