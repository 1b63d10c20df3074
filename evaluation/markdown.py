"""Markdown tables: how reports and benchmarks show their figures."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def table(head: Sequence[str], rows: Iterable[Sequence[object]], align: str | None = None) -> str:
    """A markdown table.

    Args:
        head: the column titles.
        rows: the cells, one sequence per row (``str()`` of each).
        align: one letter per column, ``l`` or ``r``; default the first
            column left, the others right (a label, then numbers).
    """
    align = align or "l" + "r" * (len(head) - 1)
    if len(align) != len(head):
        raise ValueError(f"{len(align)} alignments for {len(head)} columns")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
