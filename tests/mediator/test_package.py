"""The package shell: importing the mediator needs no app registry."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT

IMPORT_BEFORE_SETUP = """
import os
os.environ.pop("DJANGO_SETTINGS_MODULE", None)
import mediator
from mediator import Command, DomainEvent, handles

class Happened(DomainEvent):
    n: int

from django.apps import apps
assert not apps.ready
assert Happened(n=1).event_type == "__main__.Happened"
assert set(mediator.__all__) <= set(dir(mediator))
"""


def test_importing_the_mediator_and_declaring_an_event_needs_no_app_registry() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_BEFORE_SETUP], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
