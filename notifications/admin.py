from django.contrib import admin

from notifications.models import SentEmail


@admin.register(SentEmail)
class SentEmailAdmin(admin.ModelAdmin):
    list_display = ["sent_at", "kind", "recipient", "subject", "event_id"]
    list_filter = ["kind", "sent_at"]
    search_fields = ["recipient", "subject", "=event_id"]
    readonly_fields = ["event_id", "kind", "recipient", "subject", "body", "sent_at"]

    def has_add_permission(self, request: object) -> bool:
        return False
