"""The pages say what the code has: every setting, check, make target and
module is documented where a reader looks for it, the README stays a first
hour's worth, and the site's nav holds every page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from mediator.conf import DEFAULTS as MEDIATOR_DEFAULTS
from mediator.retention.policy import DEFAULTS as RETENTION_DEFAULTS
from tests.docs.pages import DOCS, README, blocks, prose
from tests.support import ROOT

README_MAX_LINES = 150


class _MkDocsLoader(yaml.SafeLoader):
    """mkdocs.yml names Python objects (`!!python/name:...`); read them as strings."""


_MkDocsLoader.add_multi_constructor(
    "tag:yaml.org,2002:python/name:", lambda loader, suffix, node: suffix
)


def mkdocs() -> dict[str, Any]:
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_MkDocsLoader)


def nav_pages() -> list[str]:
    return [page for entry in mkdocs()["nav"] for page in entry.values()]


def section(page: Path, heading: str) -> str:
    """The text under `heading` up to the next heading of its level or above."""
    text = page.read_text()
    level = heading.split(" ")[0]
    start = text.index(f"\n{heading}\n")
    rest = text[start + len(heading) + 2 :]
    end = re.search(rf"^#{{1,{len(level)}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def test_the_readme_is_a_first_hour_and_starts_with_the_two_commands() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md is {len(lines)} lines"
    first = blocks(README)[0]
    assert first.lang == "sh"
    assert [line.split()[:2] for line in first.code.splitlines()] == [
        ["make", "run"],
        ["make", "test"],
    ]
    assert [b.lang for b in blocks(README)][:2] == ["sh", "python"]
    own_project = section(README, "## Use it in your own project")
    assert 'pip install "django-durable-mediator[redis]"' in own_project
    assert "(docs/install.md)" in own_project


def test_the_readmes_links_lead_to_files_that_exist() -> None:
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", prose(README))
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert local, "the README links into the docs"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links to {missing}"
    for page in DOCS.glob("*.md"):
        assert f"(docs/{page.name})" in README.read_text(), f"README does not lead to {page.name}"


def test_the_nav_holds_every_page_and_only_pages_that_exist() -> None:
    nav = nav_pages()
    assert nav[:2] == ["index.md", "install.md"]
    assert nav[-1] == "development.md"
    assert sorted(nav) == sorted(p.name for p in DOCS.glob("*.md"))
    assert len(nav) == len(set(nav))
    assert mkdocs()["strict"] is True


def test_benchmarks_and_reliability_moved_into_the_docs() -> None:
    for name, page in (("BENCHMARKS.md", "benchmarks.md"), ("RELIABILITY.md", "reliability.md")):
        pointer = (ROOT / name).read_text()
        assert f"(docs/{page})" in pointer
        assert len(pointer.splitlines()) <= 3
        assert (DOCS / page).exists()


def test_the_configuration_page_documents_every_mediator_and_retention_key() -> None:
    mediator = section(DOCS / "configuration.md", "## The MEDIATOR setting")
    retention = section(DOCS / "configuration.md", "### Retention keys")
    assert not [k for k in MEDIATOR_DEFAULTS if f"| `{k}` |" not in mediator]
    assert not [k for k in RETENTION_DEFAULTS if f"| `{k}` |" not in retention]


def test_the_configuration_page_documents_every_system_check() -> None:
    source = "".join(p.read_text() for p in (ROOT / "mediator").rglob("*.py"))
    ids = set(re.findall(r'id="(mediator\.[EW]\d{3})"', source))
    assert len(ids) >= 10
    table = section(DOCS / "configuration.md", "## System checks")
    documented = set(re.findall(r"^\| `(mediator\.[EW]\d{3})` \|", table, re.M))
    assert documented == ids


def test_the_development_page_documents_every_make_target() -> None:
    makefile = (ROOT / "Makefile").read_text()
    phony = set(re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split())  # type: ignore[union-attr]
    table = section(DOCS / "development.md", "## make targets")
    documented = set(re.findall(r"^\| `make ([a-z-]+)", table, re.M))
    assert documented == phony


def test_the_development_page_names_every_module_of_the_mediator() -> None:
    table = section(DOCS / "development.md", "## The repository")
    rows = {
        match.group(1): match.group(2)
        for match in re.finditer(r"^\| ([^|]+) \| ([^|]+) \|$", table, re.M)
    }
    mediator = ROOT / "mediator"
    for path in sorted(mediator.rglob("*.py")):
        relative = path.relative_to(mediator)
        if path.name == "__init__.py" or relative.parts[0] == "migrations":
            continue
        if len(relative.parts) == 1 or relative.parts[0] == "management":
            # A top-level module is the app shell's, a layer's of its own
            # (`tasks_backend.py`), or the foundation's.
            own = [cells for layer, cells in rows.items() if f"`{path.name}`" in layer]
            if path.stem in APP_SHELL:
                row = rows["app shell"]
            else:
                row = own[0] if own else rows["foundation"]
        else:
            package = f"`{relative.parts[0]}/`"
            row = next(cells for layer, cells in rows.items() if package in layer)
        assert f"`{path.name}`" in row, f"the layers table does not name mediator/{relative}"


APP_SHELL = {"apps", "wiring", "models", "admin", "urls", "relay_outbox", "prune_mediator",
             "mediator_graph"}  # fmt: skip
