"""Django's admin autodiscovery imports this module: the admin classes live
in mediator.ops.admin."""

from mediator.ops import admin as _admin  # noqa: F401  (registers the ModelAdmins)
