"""The one direction of imports: bot -> rag <- indexing; only bot/hosts imports botbuilder or Agents SDK."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(package: str) -> dict[str, set[str]]:
    """Top-level module names each file of `package` imports (absolute imports)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{path} imports {name}"
        for path, names in imported_modules(package).items()
        for name in names
        if name.split(".")[0] in forbidden
    )


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("rag", ("bot", "indexing", "ragbot", "botbuilder", "botframework", "microsoft_agents")),
        ("indexing", ("bot", "ragbot", "botbuilder", "botframework", "microsoft_agents")),
        ("bot", ("indexing", "ragbot")),
    ],
)
def test_import_direction(package: str, forbidden: tuple[str, ...]) -> None:
    assert imported_modules(package), f"{package} has no modules"
    assert offenders(package, forbidden) == []


SDKS = ("botbuilder", "botframework", "microsoft_agents")


def test_only_the_host_seam_imports_an_sdk() -> None:
    assert [line for line in offenders("bot", SDKS) if not line.startswith("bot/hosts/")] == []
    assert offenders("bot/hosts", SDKS), "the hosts do import the SDKs (guards against a vacuous pass)"


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    """The checker itself must catch a forbidden import (guards against a vacuous pass)."""
    tree = ast.parse("from bot.app import create_app\nimport botbuilder.core\n")
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {name.split(".")[0] for name in names} >= {"bot", "botbuilder"}
