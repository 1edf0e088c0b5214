"""Indexing cannot wipe the index by accident (#13 item 9): the real `ragbot index` command on a local
index. Indexing a sub-folder, one file or an empty folder touches only what it was given; a run that
would remove more than half of the index stops (exit 2, nothing written) unless --prune is given."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag.local.store import LocalStore
from tests.reliability.local_index import HELPDESK, index

pytestmark = pytest.mark.reliability

FILES = {
    "it": ["vpn-macos.md", "vpn-error-codes.md", "printer-add-mac.md"],
    "hr": ["annual-leave.md", "sick-leave.md"],
}


def knowledge_base(folder: Path) -> Path:
    for area, names in FILES.items():
        (folder / area).mkdir(parents=True)
        for name in names:
            shutil.copy(HELPDESK / area / name, folder / area / name)
    return folder


def chunks_by_file(data: Path) -> dict[str, set[str]]:
    with LocalStore(data / "index.sqlite", read_only=True) as store:
        rows = store._db.execute("SELECT filepath, id FROM chunks").fetchall()
    out: dict[str, set[str]] = {}
    for filepath, chunk_id in rows:
        out.setdefault(filepath, set()).add(chunk_id)
    return out


def summary(data: Path, *args: str) -> dict[str, object]:
    done = index(data, *args, "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_a_sub_folder_a_file_or_an_empty_folder_updates_only_what_it_names(tmp_path: Path) -> None:
    data, docs = tmp_path / "data", knowledge_base(tmp_path / "docs")
    summary(data, str(docs))
    before = chunks_by_file(data)
    assert len(before) == 5

    printer = docs / "it" / "printer-add-mac.md"
    printer.write_text(printer.read_text() + "\n## Still stuck?\n\nCall the IT Bar on extension 4040.\n")
    shutil.copy(HELPDESK / "it" / "mfa-new-phone.md", docs / "it" / "mfa-new-phone.md")
    run = summary(data, str(docs / "it"))
    assert (run["files_indexed"], run["files_unchanged"], run["files_deleted"]) == (2, 2, 0)
    after = chunks_by_file(data)
    assert set(after) == {*before, "it/mfa-new-phone.md"}  # named as in the whole folder, nothing removed
    assert {
        path: ids
        for path, ids in after.items()
        if path not in ("it/printer-add-mac.md", "it/mfa-new-phone.md")
    } == {path: ids for path, ids in before.items() if path != "it/printer-add-mac.md"}

    one = summary(data, str(docs / "hr" / "sick-leave.md"))
    (tmp_path / "empty").mkdir()
    empty = summary(data, str(tmp_path / "empty"))
    assert (one["files_unchanged"], one["files_deleted"], empty["files_deleted"]) == (1, 0, 0)
    assert chunks_by_file(data) == after

    (docs / "hr" / "sick-leave.md").unlink()  # removed under the folder given: goes, as before
    assert summary(data, str(docs / "hr"))["files_deleted"] == 1
    assert set(chunks_by_file(data)) == set(after) - {"hr/sick-leave.md"}


def test_removing_more_than_half_of_the_index_needs_prune(tmp_path: Path) -> None:
    data, docs = tmp_path / "data", knowledge_base(tmp_path / "docs")
    summary(data, str(docs))
    before = chunks_by_file(data)
    shutil.rmtree(docs / "it")

    refused = index(data, str(docs))
    assert refused.returncode == 2
    assert "would remove 3 of the 5 files in the index" in refused.stderr and "--prune" in refused.stderr
    assert chunks_by_file(data) == before

    pruned = summary(data, str(docs), "--prune")
    assert pruned["files_deleted"] == 3
    assert set(chunks_by_file(data)) == {"hr/annual-leave.md", "hr/sick-leave.md"}
