import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from mediator.messages.context import message_context, valid_id

HEADER = "X-Correlation-ID"


class CorrelationIdMiddleware:
    """Every event published while serving a request carries the request's
    correlation id, echoed in the response: the client's X-Correlation-ID if it
    is a plain id (letters, digits, `._:-`, at most 64), else a new one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        correlation_id = valid_id(request.headers.get(HEADER)) or str(uuid.uuid4())
        with message_context(correlation_id=correlation_id, causation_id=None):
            response = self.get_response(request)
        response[HEADER] = correlation_id
        return response
