import logging
import signal
import time
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

from mediator.conf import mediator_settings
from mediator.recovery.sweep import SweepResult, sweep

logger = logging.getLogger("mediator.relay")


class Command(BaseCommand):
    help = (
        "Dispatch outbox rows still pending after the grace period, then re-send "
        "deliveries the broker lost (one reconciliation pass). Once, or --loop."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="keep sweeping until stopped")
        parser.add_argument("--interval", type=float, default=None, help="seconds between sweeps")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument(
            "--grace", type=float, default=None, help="relay rows older than this (seconds)"
        )
        parser.add_argument(
            "--redeliver-after",
            type=float,
            default=None,
            help="re-send deliveries unsettled this long after dispatch (seconds)",
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
            try:
                self.report(
                    sweep(
                        batch_size=options["batch_size"],
                        grace_seconds=options["grace"],
                        redeliver_after=options["redeliver_after"],
                    )
                )
            except Exception:
                if not options["loop"]:
                    raise
                # A database or broker outage must not end the loop: try again.
                logger.exception("sweep failed; retrying in %ss", interval)
                connections.close_all()
            if not options["loop"] or stopping:
                return
            deadline = time.monotonic() + interval
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.1)
            if stopping:
                return

    def report(self, result: SweepResult) -> None:
        relayed, reconciled = result.relayed, result.reconciled
        errors = relayed.errors + reconciled.errors
        self.stdout.write(
            f"dispatched {relayed.dispatched}, no handlers {relayed.no_handlers}, "
            f"waiting for a handler {relayed.waiting}, "
            f"left pending {relayed.failed}; redelivered {reconciled.redelivered}, "
            f"settled {reconciled.settled}" + (f" ({errors[-1]})" if errors else "")
        )
