"""Signals the mediator sends."""

from django.dispatch import Signal

# A delivery was recorded as poisoned. Keyword arguments: handler (the task
# name), message (the envelope as received) and error ("Type: text").
# Receivers run in the process that recorded it; they must not raise.
delivery_poisoned = Signal()
