"""The environment variables the settings read, found by reading their source."""

import ast
from pathlib import Path

from tests.support import ROOT

READERS = {"env_str", "env_bool", "env_int", "env_float", "env_list"}


def settings_env_vars() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "config").glob("*.py"):
        for node in ast.walk(ast.parse(Path(path).read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in READERS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names.add(node.args[0].value)
    return names
