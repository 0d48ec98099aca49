from django.db import models


class AppliedEffect(models.Model):
    """Written with every handler's effect, in its transaction. Not unique on
    purpose: two rows for one (event, handler) are a duplicated effect."""

    event_id = models.UUIDField(db_index=True)
    handler = models.CharField(max_length=200)

    def __str__(self) -> str:
        return f"{self.handler} applied {self.event_id}"
