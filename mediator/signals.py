"""Signals the mediator sends."""

from django.dispatch import Signal

# A delivery was recorded as poisoned. Keyword arguments: row (the
# PoisonedTask), handler (the task name), message (the envelope as received)
# and error ("Type: text"). Receivers run in the transaction that writes the
# row: if one raises, neither is written (and the delivery is not lost: the
# reconciler sends it again later).
delivery_poisoned = Signal()
