"""The production image, checked without a Docker engine: its build context
(the tree minus .dockerignore) holds every module the running project imports,
and the paths the compose commands write belong to the user it runs as."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from config import settings as production
from scripts.image_context import build_context, dockerignore_patterns
from tests.config.test_compose import COMPOSE
from tests.support import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
# What the image runs imports first-party code from these packages; each must
# come from the build context, not from this checkout.
FIRST_PARTY = sorted(
    {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench", "chaos", "scripts"}
)


IMPORTS = """
import importlib, sys
from pathlib import Path
import django
django.setup()
from django.conf import settings
from django.urls import get_resolver
get_resolver().url_patterns  # every view module
for name in [settings.WSGI_APPLICATION.rpartition(".")[0], "config.celery",
             settings.CELERY_WORKER_CONSUMER.partition(":")[0]]:
    importlib.import_module(name)
outside = sorted(
    f"{name}: {module.__file__}" for name, module in list(sys.modules.items())
    if name.split(".")[0] in FIRST_PARTY and getattr(module, "__file__", None)
    and not Path(module.__file__).resolve().is_relative_to(Path.cwd().resolve())
)
print("\\n".join(outside) or "all inside")
"""


def test_the_image_copies_the_whole_tree_and_leaves_out_local_state() -> None:
    assert "COPY . ." in DOCKERFILE
    patterns = dockerignore_patterns()
    for local in (".git", ".venv", "var", "db.sqlite3*", "staticfiles"):
        assert local in patterns, f".dockerignore should leave out {local}"


def test_everything_the_project_imports_is_in_the_build_context(tmp_path: Path) -> None:
    context = build_context(tmp_path / "context")
    script = f"FIRST_PARTY = {FIRST_PARTY!r}\n{IMPORTS}"
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", script],
        cwd=context, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings",
             "DJANGO_DEBUG": "false", "SECRET_KEY": "image-check-" + "k" * 50,
             "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "all inside", f"imported from outside the image:\n{done.stdout}"


def test_the_app_user_owns_what_the_compose_commands_write() -> None:
    static_root = Path(production.STATIC_ROOT).relative_to(ROOT)
    beat = COMPOSE["services"]["beat"]["command"].split()
    beat_schedule = Path(beat[beat.index("--schedule") + 1]).parent.relative_to("/app")
    chown = next(line for line in DOCKERFILE.splitlines() if "chown" in line)
    for path in (static_root, beat_schedule):
        assert f"/app/{path}" in chown, f"/app/{path} is written at runtime but not owned by app"
    assert "\nUSER app\n" in DOCKERFILE
