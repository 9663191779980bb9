"""Plain-text and Markdown tables of the headline metrics."""

from __future__ import annotations

HEADLINE = (
    ("clean_accuracy", "clean accuracy (CA)"),
    ("attack_success_rate", "attack success rate (ASR)"),
    ("robust_accuracy", "robust accuracy (RA)"),
)


def _cell(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def metrics_table(columns: dict[str, dict], extra_rows: dict[str, dict[str, str]] | None = None) -> str:
    """Rows = metrics, columns = models (e.g. teacher / student), values as percentages."""
    rows = [(label, [_cell(col.get(key)) for col in columns.values()]) for key, label in HEADLINE]
    for label, cells in (extra_rows or {}).items():
        rows.append((label, [cells.get(name, "") for name in columns]))
    first = max(len(label) for label, _ in rows)
    widths = [max(len(name), *(len(cells[i]) for _, cells in rows)) for i, name in enumerate(columns)]
    header = " " * first + "  " + "  ".join(name.rjust(w) for name, w in zip(columns, widths, strict=True))
    lines = [header]
    for label, cells in rows:
        lines.append(label.ljust(first) + "  " + "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
