"""One row of the benchmark table, and the table itself.

Every speed figure is printed next to a baseline measured in the same run on the same machine, because
absolute numbers on a shared, noisy machine mean little; the ratio is the figure to read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import BaseModel


class Row(BaseModel):
    """A measured figure, optionally against a baseline measured in the same run.

    `higher_is_better` says how to read the ratio (turns/s: yes; latency and memory: no).
    """

    bench: str
    figure: str
    value: float | None
    unit: str = ""
    baseline: str | None = None
    baseline_value: float | None = None
    higher_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """value / baseline_value, when both exist and the baseline is not zero."""
        if self.value is None or not self.baseline_value:
            return None
        return self.value / self.baseline_value


def failed(bench: str, reason: str) -> Row:
    """A row that says a piece produced no figure (it crashed, timed out or lacks a prerequisite)."""
    return Row(bench=bench, figure="(not measured)", value=None, note=reason)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _cells(row: Row) -> list[str]:
    value = f"{_number(row.value)} {row.unit}".strip() if row.value is not None else "-"
    base_unit = row.unit.split()[0] if row.unit else ""  # "ms p50" -> "ms": the label names the statistic
    baseline = f"{row.baseline}: {_number(row.baseline_value)} {base_unit}".strip() if row.baseline else ""
    ratio = row.ratio
    ratio_text = ""
    if ratio is not None:
        arrow = "higher is better" if row.higher_is_better else "lower is better"
        ratio_text = f"{ratio:.2f}x ({arrow})"
    return [row.bench, row.figure, value, baseline, ratio_text, row.note]


HEADER = ("bench", "figure", "value", "baseline (same run)", "ratio", "note")


def render(rows: Iterable[Row]) -> str:
    """A plain-text table (fixed-width columns) that reads well in a terminal and in a README code block."""
    table: list[Sequence[str]] = [HEADER, *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    lines = []
    for index, line in enumerate(table):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)
