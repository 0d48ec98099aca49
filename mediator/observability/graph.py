"""The event → handler map, and each saga's steps, as text or as a Mermaid diagram."""

from __future__ import annotations

from dataclasses import dataclass

from mediator.handlers.registry import handler_registry
from mediator.messages.base import message_types
from mediator.sagas.definition import SagaMessage, command_label, saga_registry


@dataclass(frozen=True)
class Graph:
    handlers: dict[str, list[str]]  # message type -> handler names
    sagas: dict[str, list[tuple[str, str, str]]]  # saga -> (step, action, compensation)


def event_map() -> Graph:
    # A saga's step messages are its own plumbing: the saga is drawn instead.
    classes = [cls for cls in message_types.all() if not issubclass(cls, SagaMessage)]
    types = sorted({cls.event_type for cls in classes})
    return Graph(
        handlers={t: [spec.name for spec in handler_registry.for_type(t)] for t in types},
        sagas={
            saga.name: [
                (
                    step.step_name,
                    command_label(step.action),
                    command_label(step.compensate) if step.compensate else "",
                )
                for step in saga.steps
            ]
            for saga in sorted(saga_registry.all(), key=lambda saga: saga.name)
        },
    )


def as_text(graph: Graph) -> str:
    lines = []
    for event_type, handlers in graph.handlers.items():
        lines.append(event_type)
        lines += [f"  -> {handler}" for handler in handlers] or ["  (no handlers)"]
    for saga, steps in graph.sagas.items():
        lines.append(f"saga {saga}")
        for number, (name, action, undo) in enumerate(steps, 1):
            lines.append(f"  {number}. {name}: {action}" + (f" (undo: {undo})" if undo else ""))
    return "\n".join(lines)


def as_mermaid(graph: Graph) -> str:
    def node(name: str) -> str:
        return name.replace(".", "_")

    lines = ["flowchart LR"]
    for event_type, handlers in graph.handlers.items():
        lines.append(f'    {node(event_type)}(["{event_type}"])')
        for handler in handlers:
            lines.append(f'    {node(event_type)} --> {node(handler)}["{handler}"]')
    for saga, steps in graph.sagas.items():
        lines.append(f'    subgraph saga_{node(saga)}["saga {saga}"]')
        previous = ""
        for number, (name, _, _) in enumerate(steps, 1):
            step = f"saga_{node(saga)}_{name}"
            lines.append(f'        {step}[["{number}. {name}"]]')
            if previous:
                lines.append(f"        {previous} --> {step}")
            previous = step
        lines.append("    end")
        for name, action, undo in steps:
            step = f"saga_{node(saga)}_{name}"
            lines.append(f"    {step} -- sends --> {node(action)}")
            if undo:
                lines.append(f"    {step} -. undo .-> {node(undo)}")
    return "\n".join(lines)
