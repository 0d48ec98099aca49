"""What a newer release of the code adds: a handler for an event the older
release already publishes. Imported by tests/testapp/handlers.py only in
processes started with TESTAPP_NEW_RELEASE=1 (a worker and a relay on the new
code, during a rolling deploy); the test process itself plays the old one."""

from mediator import DomainEvent, current_event_id, handles
from tests.testapp.models import Effect

NEW_RELEASE_QUEUE = "new-release"  # consumed only by the new release's worker


class Launched(DomainEvent):
    event_type = "testapp.Launched"

    key: str


@handles(Launched, queue=NEW_RELEASE_QUEUE)
def record_launch(event: Launched) -> None:
    Effect.objects.create(event_id=current_event_id(), handler="record_launch")
