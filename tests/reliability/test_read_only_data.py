"""A read-only data directory (#13 item 7, the index side): an existing local index still answers, from
`ragbot ask` and from `ragbot serve` (with memory kept elsewhere), and what cannot work says which
directory and why. The directory is made read-only for root too (see `local_index.read_only`)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.reliability.local_index import (
    QUESTION,
    answered,
    corpus,
    environment,
    index,
    read_only,
    serving,
)

pytestmark = pytest.mark.reliability


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    """A data directory holding a built index, read-only for the test."""
    folder = tmp_path / "data"
    built = index(folder, str(corpus(tmp_path / "docs")))
    assert built.returncode == 0, built.stderr
    with read_only(folder):
        yield folder


def ragbot(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ragbot", *args],
        env=environment(data),
        cwd=data.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ask_answers_from_an_index_in_a_read_only_directory(data: Path) -> None:
    done = ragbot(data, "ask", QUESTION)
    assert done.returncode == 0, done.stderr
    assert "vpn" in done.stdout.lower() and "Sources:" in done.stdout
    assert "Traceback" not in done.stderr


async def test_serve_answers_from_an_index_in_a_read_only_directory(
    data: Path, tmp_path: Path, aiohttp_server: Any
) -> None:
    async with serving(data, tmp_path / "serve.log", aiohttp_server) as server, aiohttp.ClientSession() as s:
        async with s.get(f"{server.url}/readyz") as response:
            assert response.status == 200, await response.text()
        assert answered(await server.ask(s))
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def test_indexing_into_a_read_only_directory_names_it_and_exits_2(data: Path) -> None:
    docs = data.parent / "docs"
    for args in ([str(docs)], [str(docs), "--recreate"]):
        done = ragbot(data, "index", *args)
        assert done.returncode == 2, done.stderr
        assert f"the directory {data} must be writable" in done.stderr
        assert "Traceback" not in done.stderr
    assert sorted(path.name for path in data.iterdir()) == ["index.sqlite"]
