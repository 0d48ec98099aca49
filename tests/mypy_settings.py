"""For mypy's Django plugin only: every app whose models the code uses."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "chaos", "bench"]
