"""Messages: event and command classes, their type registry, the envelope
they travel in, and the context (ids, trace) a message carries."""
