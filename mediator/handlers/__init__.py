"""Handlers: who handles which message (`handles`, the registry) and the
pipeline of behaviours a handler run goes through."""
