"""Recovery: the relay (outbox rows the after-commit path missed), the
reconciler (deliveries the broker lost) and the periodic sweep running both."""
