"""Find the files to index under the folders given on the command line.

Rules: folders and files whose name starts with `_` or `.` (e.g. `_sources/`, `.git/`) are not walked;
`README.*` files describe a folder rather than being articles and are skipped, as are types without a
loader. Each file is named by its path relative to the folder it was found in (`it/vpn.md`), which is
the `filepath` the index keys files by.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from indexing.loaders import LOADERS


@dataclass(frozen=True)
class SourceFile:
    path: Path
    filepath: str  # posix path relative to the folder given on the command line


@dataclass
class Discovery:
    files: list[SourceFile] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # README files and unsupported types
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


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
            continue
        candidates = [root] if root.is_file() else _walk(root)
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
            found.files.append(SourceFile(path, filepath))
    return found


def _walk(root: Path) -> list[Path]:
    out: list[Path] = []
    for path in sorted(root.iterdir()):
        if _hidden(path.name):
            continue
        if path.is_dir():
            out.extend(_walk(path))
        elif path.is_file():
            out.append(path)
    return out


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
