"""`make run` installs what running needs, `make test` adds the development tools (read from `make -n`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def planned(target: str) -> list[str]:
    """The commands `make TARGET` would run from scratch (`-B`: as if nothing were built yet)."""
    done = subprocess.run(
        ["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.splitlines()


def test_run_installs_no_development_tools() -> None:
    installs = [line for line in planned("run") if "pip install" in line and "--upgrade pip" not in line]
    assert installs and all(line.endswith("-e .") for line in installs), installs


def test_test_installs_the_development_tools() -> None:
    assert any(line.endswith("-e '.[dev]'") for line in planned("test"))


def test_a_venv_left_without_pip_is_mended(tmp_path: Path) -> None:
    """Debian without python3-venv leaves .venv with python but no pip; once the package is installed,
    `make run` again must finish the venv rather than fail on `python -m pip`."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", ".venv"], cwd=tmp_path, check=True)
    create = next(line for line in planned("install") if " -m venv " in line)
    subprocess.run(create.replace("python3", sys.executable, 1), shell=True, cwd=tmp_path, check=True)
    assert (tmp_path / ".venv" / "bin" / "pip").exists()
