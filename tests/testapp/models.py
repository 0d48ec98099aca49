from django.db import models


class Effect(models.Model):
    """A handler's database effect. Deliberately not unique: a second row for
    one (event, handler) is exactly the duplicate the inbox must prevent."""

    event_id = models.UUIDField()
    handler = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.handler} applied {self.event_id}"
