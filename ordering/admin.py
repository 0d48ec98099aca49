from django.contrib import admin

from ordering.models import Order, OrderItem


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
