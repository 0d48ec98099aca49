import signal
import time
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from mediator.conf import mediator_settings
from mediator.relay import relay_pending


class Command(BaseCommand):
    help = "Dispatch outbox rows still pending after the grace period (once, or --loop)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="keep relaying until stopped")
        parser.add_argument("--interval", type=float, default=None, help="seconds between sweeps")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument(
            "--grace", type=float, default=None, help="only rows older than this (seconds)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        interval = options["interval"] or mediator_settings()["RELAY_INTERVAL_SECONDS"]
        stopping = False

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        if options["loop"]:
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
        while True:
            result = relay_pending(batch_size=options["batch_size"], grace_seconds=options["grace"])
            self.stdout.write(
                f"dispatched {result.dispatched}, no handlers {result.no_handlers}, "
                f"left pending {result.failed}"
                + (f" ({result.errors[-1]})" if result.errors else "")
            )
            if not options["loop"] or stopping:
                return
            deadline = time.monotonic() + interval
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.1)
            if stopping:
                return
