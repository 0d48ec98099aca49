"""`python -m mediator.testing.worker_process -A app worker ...`: Celery's own
command line, run on the test databases.

The worker loads the project's settings module, as any worker does, but a
test runs on databases whose names the test runner chose (test_<name>, a
temporary SQLite file). mediator.testing.worker.Worker passes those names in
MEDIATOR_TEST_DATABASE_NAMES; they replace the settings' names before
anything opens a connection.
"""

from __future__ import annotations

import json
import os
import sys


def use_test_databases() -> None:
    names = json.loads(os.environ.get("MEDIATOR_TEST_DATABASE_NAMES") or "{}")
    if not names:
        return
    from django.conf import settings

    for alias, name in names.items():
        settings.DATABASES[alias]["NAME"] = name


def main() -> None:
    use_test_databases()
    from celery.__main__ import main as celery

    sys.argv = ["celery", *sys.argv[1:]]
    celery()


if __name__ == "__main__":
    main()
