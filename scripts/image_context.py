"""The production image's build context, without a Docker engine: the tree as
`COPY . .` sees it (git's files, tracked or not ignored, minus .dockerignore)."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def dockerignore_patterns(root: Path = ROOT) -> list[str]:
    return [
        line.strip()
        for line in (root / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    for pattern in patterns:
        pattern = pattern.removeprefix("**/")
        if fnmatch.fnmatch(relative, pattern) or any(fnmatch.fnmatch(p, pattern) for p in parts):
            return True
    return False


def build_context(into: Path, root: Path = ROOT) -> Path:
    """Copy what the image would get into `into` (created), and return it."""
    patterns = dockerignore_patterns(root)
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    into.mkdir(parents=True, exist_ok=True)
    for relative in tracked:
        source = root / relative
        if source.is_file() and not ignored(relative, patterns):
            (into / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / relative)
    return into
