"""`ragbot index`: build or update the search index from folders of documents."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the indexer pulls in the Azure SDK and the ONNX runtime: import it only to run
    from indexing.pipeline import IndexSummary
    from rag.settings import Settings

HELP = "build or update the search index from folders of documents"
DESCRIPTION = """Turn folders of documents into the index the bot answers from.

  ragbot index samples/helpdesk                   local index (RAGBOT_DATA_DIR/index.sqlite)
  ragbot index docs/ --target azure               Azure AI Search (AZURE_SEARCH_* settings)
  ragbot index docs/ --dry-run --json             what would change, as JSON
  ragbot index docs/ --base-url https://intranet.contoso.com/kb
                                                  cite docs/it/vpn.md as https://intranet.contoso.com/kb/it/vpn.md
  ragbot index docs/ --target azure --knowledge-base kb
                                                  also a knowledge source over the index and
                                                  the knowledge base kb (agentic retrieval)

Documents: Markdown (.md; front matter title, url, last_modified, groups), plain text (.txt), HTML
(main content, <title>, <link rel=canonical>, <meta name="groups">), PDF (page numbers kept) and DOCX
(headings kept). Other files and README files are skipped and counted; folders whose name starts
with "_" or "." are not read. A file that cannot be read is reported and the run goes on.

Incremental: each file's content hash is stored with its chunks, so unchanged files are skipped and a
changed file's chunks are replaced. Files are known by where they are: the index keeps each file's
path relative to the folder it was indexed from, and that folder, so indexing a sub-folder (or one
file) later updates those files under their names, and a new file there is named relative to the
same folder. A file no longer on disk is removed only when it lies under the folders given; a run
that would remove more than half of the index stops (exit 2, nothing written) unless --prune is
given. Chunk ids are stable (file, position and text). Only changed files are re-chunked: after
changing --chunk-tokens, --overlap or --base-url, rebuild with --recreate. An index built by an
earlier version learns each file's folder the first time a run finds the file (nothing re-embedded).

Who may see a file (security trimming): Markdown front matter `groups: [hr, managers]` and
`users: [<Entra object id>]` (or `oids`), or HTML <meta name="groups" content="hr, managers"> and
<meta name="users" content="...">; a file naming neither is visible to everyone. The local index keeps
both; an Azure index needs AZURE_SEARCH_PERMITTED_GROUPS_COLUMN and _USERS_COLUMN for the files that
name them (without the field such a file is reported and not indexed).

Progress bars go to stderr on a terminal, log lines otherwise. --json prints the summary as one JSON
object on stdout (files_seen, files_skipped, files_failed, chunks_added, chunks_updated,
chunks_deleted, seconds, errors, skipped, warnings; files_skipped = unchanged files + files that are
not documents, `skipped` names the latter). A file is never rejected for a front matter that is not
valid YAML or for text that is not UTF-8: it is read leniently and the repair is a warning naming the
file and line.
--knowledge-base NAME (Azure only) then creates or updates the `searchIndex` knowledge source over the
index (named AZURE_SEARCH_KNOWLEDGE_SOURCE, default the index's name) and the knowledge base NAME that
uses it, with AZURE_OPENAI_MODEL as its model when Azure OpenAI is configured; running it again changes
nothing. With --dry-run it prints the JSON it would send (keys masked) instead. Answer from it with
AZURE_SEARCH_KNOWLEDGE_BASE=NAME.
Exit status 1 when a file failed, 2 on bad usage or settings."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="folders (or files) to index")
    parser.add_argument(
        "--target",
        choices=("azure", "local"),
        help="where to write (default: azure when AZURE_SEARCH_* names a service and index, else local)",
    )
    parser.add_argument(
        "--recreate",
        action="store_true",
        help="build the index from scratch (local: into a new file that replaces the index when the run "
        "completes, so a running server answers from the old one meanwhile; azure: the index is "
        "deleted first)",
    )
    parser.add_argument(
        "--prune",
        "--yes",
        dest="prune",
        action="store_true",
        help="allow a run to remove more than half of the index (files gone from the folders given)",
    )
    parser.add_argument("--dry-run", action="store_true", help="read and chunk, report, write nothing")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    parser.add_argument(
        "--chunk-tokens", type=int, metavar="N", help="chunk size in tokens (default per target)"
    )
    parser.add_argument(
        "--overlap", type=int, metavar="N", help="tokens repeated between chunks (default per target)"
    )
    parser.add_argument(
        "--knowledge-base",
        metavar="NAME",
        help="(azure) also create or update a knowledge source over the index and this knowledge base",
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="where the files are published: a file without its own url is cited as URL/filepath",
    )


def _print_summary(summary: IndexSummary) -> None:
    mode = " (dry run: nothing written)" if summary.dry_run else ""
    lines = [
        f"Indexed into {summary.target}{mode} in {summary.seconds:.1f} s",
        f"  files:  {summary.files_seen} seen, {summary.files_indexed} indexed, "
        f"{summary.files_skipped} skipped "
        f"({summary.files_unchanged} unchanged, {summary.files_unsupported} not documents), "
        f"{summary.files_failed} failed, {summary.files_deleted} removed",
        f"  chunks: {summary.chunks_added} added, {summary.chunks_updated} updated, "
        f"{summary.chunks_deleted} deleted",
    ]
    lines += [f"  skipped (not a document): {path}" for path in summary.skipped]
    lines += [f"  warning: {warning}" for warning in summary.warnings]
    lines += [f"  failed: {error.path}: {error.reason}" for error in summary.errors]
    print("\n".join(lines), file=sys.stderr)


async def _index(args: argparse.Namespace) -> IndexSummary | str:
    """The run's summary, or a usage error message."""
    from indexing.chunking import Chunker
    from indexing.factory import build_setup, default_target
    from indexing.pipeline import Indexer, PruneRefused
    from indexing.progress import Progress
    from ragbot.commands._common import init

    settings = init().rag
    target = args.target or default_target(settings)
    if args.knowledge_base and target != "azure":
        return "--knowledge-base needs the azure target (AZURE_SEARCH_* settings, --target azure)"
    setup = build_setup(settings, target)
    try:
        try:
            overlap = setup.overlap if args.overlap is None else args.overlap
            chunker = Chunker(args.chunk_tokens or setup.chunk_tokens, overlap)
        except ValueError as exc:
            return str(exc)
        indexer = Indexer(
            setup.target,
            setup.embedder,
            chunker,
            progress=Progress(),
            base_url=args.base_url,
            embed_concurrency=setup.embed_concurrency,
        )
        try:
            summary = await indexer.run(
                args.paths, recreate=args.recreate, dry_run=args.dry_run, prune=args.prune
            )
        except PruneRefused as exc:
            return str(exc)
        if args.knowledge_base:
            await _knowledge_base(settings, args)
        return summary
    finally:
        await setup.target.aclose()
        closer = getattr(setup.embedder, "aclose", None)
        if closer is not None:
            await closer()


async def _knowledge_base(settings: Settings, args: argparse.Namespace) -> None:
    from indexing.knowledge_base import masked, plan, publish

    source, base = plan(settings, args.knowledge_base)
    if args.dry_run:
        bodies = {"knowledgeSource": masked(source), "knowledgeBase": masked(base)}
        print(json.dumps(bodies, indent=None if args.json else 2))
        return
    await publish(settings, source, base)
    print(f"knowledge base {base['name']} over knowledge source {source['name']} is ready", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    missing = [str(path) for path in args.paths if not path.exists()]
    if missing:
        print(f"ragbot index: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    summary = asyncio.run(_index(args))
    if isinstance(summary, str):
        print(f"ragbot index: {summary}", file=sys.stderr)
        return 2
    if args.json:
        print(summary.model_dump_json())
    _print_summary(summary)
    return 1 if summary.files_failed else 0
