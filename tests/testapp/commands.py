from mediator import Command


class Probe(Command):
    """Its handler writes an Effect and returns `value * 2`; `mode` picks a misbehaviour."""

    event_type = "testapp.Probe"

    key: str
    value: int = 0
    mode: str = "ok"
