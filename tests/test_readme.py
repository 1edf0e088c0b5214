"""Every `RAGBOT_*` setting is in the README's table and in `ragbot config`, under its variable name."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.commandline import run_ragbot

ROOT = Path(__file__).resolve().parent.parent


def test_every_ragbot_setting_is_documented_and_shown_by_config(tmp_path: Path) -> None:
    shown = run_ragbot("config", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    names = {
        name for group in json.loads(shown.stdout).values() for name in group if name.startswith("RAGBOT_")
    }
    in_code = {
        name
        for folder in ("bot", "rag", "ragbot", "indexing")
        for source in (ROOT / folder).rglob("*.py")
        for name in re.findall(r'validation_alias="(RAGBOT_[A-Z_]+)"', source.read_text(encoding="utf-8"))
    }
    assert in_code <= names, f"settings missing from ragbot config: {sorted(in_code - names)}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = sorted(name for name in names if f"`{name}`" not in readme)
    assert not missing, f"add these to the README's RAGBOT_* table: {missing}"
