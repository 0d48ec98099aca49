"""Sending commands: a request that exactly one handler carries out.

`send(command)` runs the handler now, in this process and in the caller's
transaction, and returns its result: the web, the admin and an API share one
path to a change. `send_after_commit(command)` runs it later in a Celery task,
through the outbox, with the retries, inbox and poisoning events get.
"""

from __future__ import annotations

import uuid
from typing import Any

from mediator.delivery.inbox import in_savepoint
from mediator.delivery.outbox import write_to_outbox
from mediator.exceptions import ImproperEvent, NoCommandHandler
from mediator.handlers.pipeline import HandlerContext, run_pipeline
from mediator.handlers.registry import handler_registry
from mediator.handlers.spec import HandlerSpec
from mediator.messages.base import Command, Message
from mediator.messages.context import (
    command_id_for_send,
    current_causation_id,
    current_correlation_id,
    message_context,
)


def command_handler(command_type: type[Command]) -> HandlerSpec:
    """The one handler of a command class (the system check makes it one)."""
    specs = handler_registry.for_type(command_type.event_type)
    if len(specs) != 1:
        raise NoCommandHandler(
            f"{command_type.__name__} needs exactly one @handles handler; it has "
            f"{len(specs)}{': ' + ', '.join(s.name for s in specs) if specs else ''}."
        )
    return specs[0]


def _check_command(command: Any, verb: str) -> None:
    if type(command) is Command:
        raise ImproperEvent(f"{verb}() takes an instance of a Command subclass, not of Command.")
    if not isinstance(command, Command):
        what = (
            f"an {command.kind} ({type(command).__name__})"
            if isinstance(command, Message)
            else type(command).__name__
        )
        raise ImproperEvent(f"{verb}() takes a Command, not {what}.")


def send(command: Command) -> Any:
    """Run the command's handler now, through the behaviours, and return its result.

    It runs inside the caller's transaction (in a savepoint): if the caller
    rolls back, so does everything the handler did and every event it
    published. Outside a transaction it gets one of its own. Exceptions reach
    the caller unchanged; nothing is retried (use send_after_commit for that).
    """
    _check_command(command, "send")
    spec = command_handler(type(command))
    command_id = command_id_for_send()
    correlation_id = current_correlation_id() or str(command_id)
    context = HandlerContext(
        spec=spec,
        message_id=command_id,
        correlation_id=correlation_id,
        causation_id=current_causation_id() or "",
        attempt=1,
        delivered=False,
    )
    with message_context(
        correlation_id=correlation_id, causation_id=str(command_id), handling=command_id
    ):
        return run_pipeline(command, context, in_savepoint)


def send_after_commit(command: Command) -> uuid.UUID:
    """Run the command's handler in a Celery task once this transaction commits.

    The durable path of `publish`: an outbox row in the caller's transaction
    (a rollback sends nothing), dispatched after commit or by the relay, run
    once (inbox), retried with backoff, poisoned if it keeps failing. The
    handler's return value is discarded. Returns the command's message id.
    """
    _check_command(command, "send_after_commit")
    command_handler(type(command))  # fail in the caller, not in a worker later
    return write_to_outbox(command, "send_after_commit")
