import uuid
from collections.abc import Iterable

from django.db.models import QuerySet

from notifications.models import SentEmail


def emails_for_events(event_ids: Iterable[uuid.UUID]) -> QuerySet[SentEmail]:
    return SentEmail.objects.filter(event_id__in=list(event_ids)).order_by("created_at", "id")
