import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from mediator.messages.context import message_context

HEADER = "X-Correlation-ID"


class CorrelationIdMiddleware:
    """Every event published while serving a request carries the request's
    correlation id (taken from X-Correlation-ID, or new), echoed in the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(HEADER, "")
        correlation_id = incoming[:64] if incoming.isprintable() and incoming else str(uuid.uuid4())
        with message_context(correlation_id=correlation_id, causation_id=None):
            response = self.get_response(request)
        response[HEADER] = correlation_id
        return response
