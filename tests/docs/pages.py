"""The documentation's pages and their fenced code blocks, as the tests read them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.support import ROOT

DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
INSTALL_GUIDE = DOCS / "install.md"

# A fence starts a line (never indented, so none hides inside a list item),
# with a language and optional attributes (`title="..."`).
FENCE = re.compile(r"^```([\w+-]*)[ \t]*([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
TITLE = re.compile(r'title="([^"]+)"')
SHELL = {"sh", "bash", "shell", "console"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    title: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def module_name(self) -> str:
        """`title="myproject/behaviours.py"` runs as the module myproject.behaviours."""
        path = self.title.split(" ")[0]
        if not path.endswith(".py"):
            return "example"
        dotted = path.removesuffix(".py").replace("/", ".")
        return dotted.removesuffix(".__init__")


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        lang, attributes, code = match.groups()
        title = TITLE.search(attributes)
        found.append(
            Block(
                page=page,
                line=text.count("\n", 0, match.start()) + 1,
                lang=lang,
                title=title.group(1) if title else "",
                code=code,
            )
        )
    return found


def all_blocks() -> list[Block]:
    return [block for page in PAGES for block in blocks(page)]


def prose(page: Path) -> str:
    """The page without its fenced blocks."""
    return FENCE.sub("", page.read_text())


def inline_code(page: Path) -> list[str]:
    return re.findall(r"`([^`\n]+)`", prose(page))
