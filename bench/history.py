"""The history an Azure request carries: built on every turn of a thread, from turns it has sent before.

Run by hand: `.venv/bin/python -m bench.history` (a few seconds), or as the `history` piece of
`python -m bench`.

Figure: `history_messages` for ten exchanges (120-word answers, 2,000-token budget) as a continuing
thread builds it, its texts counted on earlier turns. Baseline, same run: the same call with the count
cache emptied first, so every text is tokenized, which is what each turn cost before counts were kept.
"""

from __future__ import annotations

from typing import Any

from bench.local_retrieval import timed
from bench.rows import Row, render
from rag.azure.chat_request import history_messages
from rag.azure.dialects import dialect
from rag.contract import Turn
from rag.tokens import count_tokens

BENCH = "history"
ANSWER = (
    "To connect to the VPN from home, open the GlobalProtect client, enter vpn.contoso.example as the "
    "portal, sign in with your company account and approve the MFA prompt [doc1]. If the client is "
    "missing, install it from the Company Portal [doc2]. "
) * 3


def _thread(exchanges: int) -> list[Turn]:
    turns: list[Turn] = []
    for n in range(exchanges):
        turns.append(Turn(role="user", content=f"How do I connect to the VPN from home, take {n}?"))
        turns.append(Turn(role="assistant", content=f"{ANSWER} ({n})", intent=[f"vpn from home {n}"]))
    return turns


def rows(quick: bool = False) -> list[Row]:
    turns = _thread(10)
    api = dialect("2024-10-21")
    repeats = 30 if quick else 200

    def build() -> list[dict[str, Any]]:
        return history_messages(turns, api, 2000)

    def build_cold() -> object:
        count_tokens.cache_clear()  # a few microseconds against milliseconds of tokenizing
        return build()

    build()
    warm, _ = timed([build] * repeats)
    cold, _ = timed([build_cold] * repeats)
    return [
        Row(
            bench=BENCH,
            figure="history for an Azure request, 10 exchanges, continuing thread",
            value=warm,
            unit="ms p50",
            baseline="every text tokenized",
            baseline_value=cold,
            higher_is_better=False,
            note=f"{len(build())} messages kept of {len(turns)} within 2,000 tokens",
        )
    ]


def main() -> None:
    print(render(rows()))


if __name__ == "__main__":
    main()
