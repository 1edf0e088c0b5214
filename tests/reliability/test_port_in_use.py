"""`ragbot serve` on a port that is taken says so in one line and exits 2 (issue #13 item 12)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.commandline import run_ragbot

pytestmark = pytest.mark.reliability


def test_a_port_in_use_is_one_line_naming_it_and_exit_code_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_ragbot(
            "serve", "--port", str(port), env={"RAGBOT_DATA_DIR": str(tmp_path)}, cwd=tmp_path, timeout=60
        )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ragbot serve: cannot listen on 127.0.0.1:{port}: the port is already in use")
    assert "--port or RAGBOT_PORT" in last
    assert "serving on" not in result.stderr  # it never claimed to serve
