"""Find the files to index under the folders given on the command line.

Rules: folders and files whose name starts with `_` or `.` (e.g. `_sources/`, `.git/`) are not walked;
`README.*` files describe a folder rather than being articles and are skipped, as are types without a
loader. Each file is named by its path relative to the folder it was found in (`it/vpn.md`); the
pipeline keeps the name a file already has in the index (see `indexing.pipeline`), which is the
`filepath` the index keys files by.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from indexing.loaders import LOADERS


@dataclass(frozen=True)
class SourceFile:
    path: Path
    filepath: str  # posix path relative to `root`
    root: Path | None = None  # the folder given on the command line (a file's own folder for a file)


@dataclass
class Discovery:
    files: list[SourceFile] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # README files and unsupported types
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    complete: bool = True  # False when a root or folder could not be read: absent files may still exist


def _hidden(name: str) -> bool:
    return name.startswith(("_", "."))


def indexable(path: Path) -> bool:
    return path.suffix.lower() in LOADERS and path.stem.lower() != "readme"


def discover(roots: list[Path]) -> Discovery:
    """Every file under `roots` in a stable order; a path named twice (two roots) is an error."""
    found = Discovery()
    owners: dict[str, Path] = {}
    for root in roots:
        if not root.exists():
            found.errors.append((str(root), "no such file or folder"))
            found.complete = False
            continue
        candidates = [root] if root.is_file() else _walk(root, found)
        for path in candidates:
            if not indexable(path):
                found.skipped.append(path)
                continue
            filepath = path.name if root.is_file() else path.relative_to(root).as_posix()
            if filepath in owners and owners[filepath].resolve() == path.resolve():
                continue  # the same file named twice
            if filepath in owners:
                found.errors.append(
                    (str(path), f"same relative path as {owners[filepath]}: index the folders separately")
                )
                continue
            owners[filepath] = path
            found.files.append(SourceFile(path, filepath, root.parent if root.is_file() else root))
    return found


def _walk(folder: Path, found: Discovery) -> list[Path]:
    """Files under `folder`, sorted; symlinked folders are not followed (no loops, no escaping the tree)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        found.errors.append((str(folder), f"cannot read folder: {exc.strerror or exc}"))
        found.complete = False
        return []
    out: list[Path] = []
    for path in entries:
        if _hidden(path.name):
            continue
        if path.is_dir():
            if not path.is_symlink():
                out.extend(_walk(path, found))
        elif path.is_file():
            out.append(path)
    return out


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
