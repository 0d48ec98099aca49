from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from mediator.observability.graph import as_mermaid, as_text, event_map


class Command(BaseCommand):
    help = "Print which handlers subscribe to which events (text, or --mermaid)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--mermaid", action="store_true", help="a Mermaid flowchart")

    def handle(self, *args: Any, mermaid: bool, **options: Any) -> None:
        graph = event_map()
        self.stdout.write(as_mermaid(graph) if mermaid else as_text(graph))
