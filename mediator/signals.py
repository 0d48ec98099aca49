"""Signals the mediator sends: how a lower layer tells the ones above it.

Each is connected by its receivers in MediatorConfig.ready(), never at import.
"""

from django.dispatch import Signal

# A handler was added to a registry (keyword: spec). The worker builds its
# Celery task from it.
handler_registered = Signal()

# A saga class was declared (keyword: saga). The saga runner registers the
# handlers of its steps.
saga_registered = Signal()

# A delivery was recorded as poisoned. Keyword arguments: row (the
# PoisonedTask), handler (the task name), message (the envelope as received)
# and error ("Type: text"). Receivers run in the transaction that writes the
# row: if one raises, neither is written (and the delivery is not lost: the
# reconciler sends it again later).
delivery_poisoned = Signal()

# A failed run will be tried again (keywords: handler, attempt, countdown,
# error), or was put off without spending a retry (keywords: handler,
# countdown, reason: "breaker" or "deferred").
delivery_retrying = Signal()
delivery_deferred = Signal()

# A saga run ended (keywords: saga, run, state), sent in the transaction that
# ends it.
saga_finished = Signal()

# A circuit breaker changed state (keywords: breaker, before, after).
breaker_transitioned = Signal()
