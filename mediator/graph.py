"""The event → handler map, as text or as a Mermaid diagram."""

from __future__ import annotations

from mediator.events import all_event_classes
from mediator.registry import handlers_for


def event_map() -> dict[str, list[str]]:
    types = sorted({cls.event_type for cls in all_event_classes()})
    return {event_type: [spec.name for spec in handlers_for(event_type)] for event_type in types}


def as_text(graph: dict[str, list[str]]) -> str:
    lines = []
    for event_type, handlers in graph.items():
        lines.append(event_type)
        lines += [f"  -> {handler}" for handler in handlers] or ["  (no handlers)"]
    return "\n".join(lines)


def as_mermaid(graph: dict[str, list[str]]) -> str:
    def node(name: str) -> str:
        return name.replace(".", "_")

    lines = ["flowchart LR"]
    for event_type, handlers in graph.items():
        lines.append(f'    {node(event_type)}(["{event_type}"])')
        for handler in handlers:
            lines.append(f'    {node(event_type)} --> {node(handler)}["{handler}"]')
    return "\n".join(lines)
