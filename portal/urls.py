from django.urls import path

from portal import views

app_name = "orders"

urlpatterns = [
    path("", views.order_list, name="order-list"),
    path("demo/", views.place_demo_order, name="order-place-demo"),
    path("checkout/", views.check_out, name="order-checkout"),
    path("<int:order_id>/", views.order_detail, name="order-detail"),
    path("<int:order_id>/live/", views.order_live, name="order-live"),
    path("<int:order_id>/cancel/", views.cancel_order, name="order-cancel"),
]
