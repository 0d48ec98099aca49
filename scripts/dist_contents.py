"""What `make dist` built: the wheel's files and dependencies, checked to hold
the mediator and nothing of the shop.

    python -m scripts.dist_contents dist
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

SHOP = ("config/", "ordering/", "shipping/", "notifications/", "portal/", "tests/", "scripts/")


def wheel_of(folder: Path) -> Path:
    [wheel] = sorted(folder.glob("django_durable_mediator-*.whl"))
    return wheel


def sdist_of(folder: Path) -> Path:
    [sdist] = sorted(folder.glob("django_durable_mediator-*.tar.gz"))
    return sdist


def wheel_files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return sorted(archive.namelist())


def wheel_metadata(wheel: Path) -> dict[str, list[str]]:
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(name).decode())
    keys = ("Version", "Requires-Dist", "Provides-Extra")
    return {key: message.get_all(key) or [] for key in keys}


def problems(folder: Path) -> list[str]:
    found = []
    wheel = wheel_of(folder)
    for name in wheel_files(wheel):
        if not (name.startswith("mediator/") or ".dist-info/" in name):
            found.append(f"wheel holds {name}: only the mediator package belongs there")
    names = wheel_files(wheel)
    for needed in ("mediator/migrations/0001_initial.py", "mediator/templates/"):
        if not any(n.startswith(needed) for n in names):
            found.append(f"wheel lacks {needed}")
    with tarfile.open(sdist_of(folder)) as archive:
        for member in archive.getnames():
            inside = member.partition("/")[2]
            if inside.startswith(SHOP):
                found.append(f"sdist holds {inside}: nothing of the shop belongs there")
    return found


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "dist")
    wheel = wheel_of(folder)
    meta = wheel_metadata(wheel)
    print(f"{wheel.name} ({wheel.stat().st_size // 1024} KiB), {sdist_of(folder).name}")
    print("files:")
    for name in wheel_files(wheel):
        print(f"  {name}")
    print("requires:")
    for requirement in meta["Requires-Dist"]:
        print(f"  {requirement}")
    found = problems(folder)
    for problem in found:
        print(f"FAIL {problem}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
