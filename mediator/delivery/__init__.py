"""Delivery: the core path of a message. publish and send, the outbox,
dispatch to the broker, the inbox transaction that makes a handler's effect
happen once, progress, and the record of a poisoned delivery."""
