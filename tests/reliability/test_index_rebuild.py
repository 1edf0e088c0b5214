"""`ragbot index --recreate` next to a running server (#13 item 8): the rebuild goes to a file of its own
and replaces the index in one rename, so the server answers from the old index until then and from the
new one after; a rebuild killed with SIGKILL leaves the old index served and intact."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from rag.local.store import LocalStore
from tests.reliability.local_index import answered, corpus, environment, index, index_command, serving

pytestmark = pytest.mark.reliability

REBUILD_S = 120.0


def rebuilding(index_file: Path, before: int) -> bool:
    """The rebuild has a file of its own, or (as before the fix) replaced the index in place."""
    if list(index_file.parent.glob("index.sqlite.rebuild-*")):
        return True
    return index_file.exists() and index_file.stat().st_ino != before


async def started_writing(index_file: Path, before: int) -> None:
    async with asyncio.timeout(REBUILD_S):
        while not rebuilding(index_file, before):  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # another process creates the file: no event to wait on


def chunk_count(index_file: Path) -> int:
    with LocalStore(index_file, read_only=True) as store:
        return store.count()


async def test_a_rebuild_never_empties_the_served_index_and_a_killed_one_changes_nothing(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    data, docs = tmp_path / "data", corpus(tmp_path / "docs")
    built = index(data, str(docs))
    assert built.returncode == 0, built.stderr
    index_file = data / "index.sqlite"
    chunks = chunk_count(index_file)

    async with serving(data, tmp_path / "serve.log", aiohttp_server) as server, aiohttp.ClientSession() as s:
        assert answered(await server.ask(s))

        # killed half-way: the old index is still served, whole
        killed = await asyncio.create_subprocess_exec(
            *index_command(str(docs), "--recreate"), env=environment(data), cwd=tmp_path
        )
        await started_writing(index_file, index_file.stat().st_ino)
        os.kill(killed.pid, signal.SIGKILL)
        await killed.wait()
        assert answered(await server.ask(s)), "a killed rebuild changed what the server answers from"
        assert chunk_count(index_file) == chunks

        # a whole rebuild while questions keep coming: every one answered, before and after the swap
        rebuild = await asyncio.create_subprocess_exec(
            *index_command(str(docs), "--recreate"),
            env=environment(data),
            cwd=tmp_path,
            stderr=asyncio.subprocess.PIPE,
        )
        replies = []
        async with asyncio.timeout(REBUILD_S):
            while rebuild.returncode is None:
                replies.append(await server.ask(s))
                await asyncio.sleep(0)
        _, errors = await rebuild.communicate()
        assert rebuild.returncode == 0, errors.decode()
        replies.append(await server.ask(s))  # from the new index

    unanswered = [reply for reply in replies if not answered(reply)]
    assert len(replies) >= 5, "the rebuild was over before the questions could test it"
    assert unanswered == [], f"{len(unanswered)} of {len(replies)} questions unanswered during the rebuild"
    assert chunk_count(index_file) == chunks
    assert sorted(path.name for path in data.iterdir() if "rebuild" in path.name) == [], (
        "the killed rebuild's file was not cleaned up"
    )
