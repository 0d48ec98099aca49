from django.contrib import admin

from shipping.models import Shipment


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    list_display = ["id", "order_id", "status", "created_at", "updated_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["=order_id"]
    readonly_fields = ["order_id", "created_at", "updated_at", "dispatched_at", "cancelled_at"]
