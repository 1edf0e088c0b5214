"""What a loader hands to the chunker: a document's metadata and its text cut into heading sections."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Section:
    """Text under one heading (heading line included, as Markdown), or one PDF page.

    `heading_path` is the chain of headings above the text, outermost first; chunks keep it so a citation
    can say where in the document a passage sits.
    """

    text: str
    heading_path: tuple[str, ...] = ()
    page: int | None = None


@dataclass
class Document:
    """A loaded source file. Missing `url`/`last_modified` are filled in by the pipeline."""

    title: str | None
    sections: list[Section]
    url: str | None = None
    last_modified: str | None = None
    group_ids: list[str] = field(default_factory=list)
    user_ids: list[str] = field(default_factory=list)
    """Who may see it: neither set = everyone; else members of a group and the users named."""
    warnings: list[str] = field(default_factory=list)
    """What the loader repaired to read the file (`path: line N: ...`), for the run's report."""


class LoadError(Exception):
    """The file cannot be read (corrupt, encrypted, not text): reported with its path, the run goes on."""
