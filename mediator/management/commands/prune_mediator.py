from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from mediator.retention.policy import RetentionPolicy
from mediator.retention.prune import delete_in_batches, prunable


class Command(BaseCommand):
    help = (
        "Delete settled outbox rows, inbox records, progress rows, finished saga runs and "
        "the project's tables listed in MEDIATOR['RETENTION'], once older than its ages."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted; delete nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        policy = RetentionPolicy.from_settings()
        for label, rows in prunable(policy).items():
            if options["dry_run"]:
                self.stdout.write(f"{label}: {rows.count()} to delete")
            else:
                self.stdout.write(f"{label}: {delete_in_batches(rows, policy.batch_size)} deleted")
