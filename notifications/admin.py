from django.contrib import admin

from notifications.models import SentEmail


@admin.register(SentEmail)
class SentEmailAdmin(admin.ModelAdmin):
    list_display = ["created_at", "kind", "recipient", "subject", "sent_at", "attempts", "event_id"]
    list_filter = ["kind", ("sent_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["recipient", "subject", "=event_id"]
    readonly_fields = [
        "event_id", "kind", "recipient", "subject", "body", "created_at", "sent_at",
        "attempts", "last_error",
    ]  # fmt: skip
    exclude = ["claimed_at"]

    def has_add_permission(self, request: object) -> bool:
        return False
