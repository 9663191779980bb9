"""The aggregated results as ``results.md``, ``results.csv``, ``runs.csv`` and ``results.tex`` (booktabs).

Tables show the group keys that vary between rows as columns; keys shared by every row are stated once
above the Markdown table. Percentages in Markdown and LaTeX; fractions in [0, 1] in the CSV files.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from experiments.aggregate import METRICS, Group, Stat, relative, run_value
from experiments.run_discovery import FoundRun
from utils.atomic_io import atomic_write_text
from utils.report import markdown_table

TEX_PLUS_MINUS = " \\pm "
HEADERS = {"clean_accuracy": "CA", "attack_success_rate": "ASR", "robust_accuracy": "RA", "der": "DER"}


def _shown(value) -> str:
    if value is None:
        return "—"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _percent(stat: Stat | None, plus_minus: str = " ± ") -> str:
    if stat is None:
        return "—"
    text = f"{100 * stat.mean:.1f}"
    return text if stat.std is None else f"{text}{plus_minus}{100 * stat.std:.1f}"


def split_keys(groups: list[Group], group_by: tuple[str, ...]) -> tuple[list[str], dict]:
    """(keys whose value differs between groups, {key: value} of those every group shares)."""
    varying = [key for key in group_by if len({_shown(g.keys[key]) for g in groups}) > 1]
    shared = {key: groups[0].keys[key] for key in group_by if key not in varying} if groups else {}
    if "role" in group_by and "role" not in varying:  # the role always gets a column: it names the model
        varying.append("role")
        shared.pop("role", None)
    return varying, shared


def markdown(groups: list[Group], runs: list[FoundRun], group_by: tuple[str, ...]) -> str:
    varying, shared = split_keys(groups, group_by)
    header = [*varying, "n", "seeds", *(f"{HEADERS[m]} (%)" for m in METRICS)]
    rows = [
        [*(_shown(g.keys[k]) for k in varying), str(len(g.runs)), ", ".join(map(_shown, g.seeds))]
        + [_percent(g.stats[m]) for m in METRICS]
        for g in groups
    ]
    lines = ["# Results", ""]
    if shared:
        lines += ["Every row: " + ", ".join(f"{key} = {_shown(value)}" for key, value in shared.items()) + ".", ""]
    lines += [markdown_table(header, rows) if rows else "No complete runs.", ""]
    lines += [
        "Mean ± sample standard deviation over seeds (n runs), in %. CA: clean accuracy; ASR: attack success "
        "rate; RA: robust accuracy; DER: defence effectiveness rate against the teacher.",
        "",
    ]
    left_out = [run for run in runs if not run.complete]
    if left_out:
        lines += ["## Runs not counted", ""]
        lines += [f"- `{relative(run.run_dir)}`: {run.note}" for run in left_out]
        lines.append("")
    return "\n".join(lines)


def _csv(header: list[str], rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if cell is None else cell for cell in row] for row in rows)
    return buffer.getvalue()


def groups_csv(groups: list[Group], group_by: tuple[str, ...]) -> str:
    header = [*group_by, "n", "seeds", *(f"{m}_{part}" for m in METRICS for part in ("mean", "std"))]
    rows = []
    for g in groups:
        stats = [(s.mean, s.std) if s else (None, None) for s in (g.stats[m] for m in METRICS)]
        seeds = " ".join(map(_shown, g.seeds))
        rows.append([*(g.keys[k] for k in group_by), len(g.runs), seeds, *(v for pair in stats for v in pair)])
    return _csv(header, rows)


def runs_csv(runs: list[FoundRun], group_by: tuple[str, ...]) -> str:
    keys = list(dict.fromkeys([*group_by, "seed"]))
    header = ["run_dir", "status", *keys, *METRICS, "note"]
    rows = [
        [relative(run.run_dir), "counted" if run.complete else "not counted"]
        + [run_value(run, key) for key in keys]
        + [run.metrics.get(m) for m in METRICS]
        + [run.note]
        for run in runs
    ]
    return _csv(header, rows)


# one character at a time: replacing in turn would escape the braces of \textbackslash{} again
TEX_SPECIAL = {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
TEX_SPECIAL |= {char: "\\" + char for char in "&%$#_{}"}


def _tex_escape(text: str) -> str:
    return "".join(TEX_SPECIAL.get(char, char) for char in text)


def latex(groups: list[Group], group_by: tuple[str, ...]) -> str:
    varying, _ = split_keys(groups, group_by)
    header = [*(_tex_escape(k) for k in varying), "$n$", *(f"{HEADERS[m]} (\\%)" for m in METRICS)]
    lines = [
        "% needs \\usepackage{booktabs}; mean $\\pm$ sample standard deviation over seeds",
        "\\begin{tabular}{" + "l" * len(varying) + "r" * (1 + len(METRICS)) + "}",
        "\\toprule",
        " & ".join(header) + " \\\\",
        "\\midrule",
    ]
    for g in groups:
        cells = [_tex_escape(_shown(g.keys[k])) for k in varying] + [str(len(g.runs))]
        cells += ["$" + _percent(g.stats[m], TEX_PLUS_MINUS) + "$" if g.stats[m] else "--" for m in METRICS]
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


def write_tables(groups: list[Group], runs: list[FoundRun], group_by: tuple[str, ...], out: Path) -> str:
    """Write the four files into ``out``; returns the Markdown."""
    text = markdown(groups, runs, group_by)
    atomic_write_text(out / "results.md", text)
    atomic_write_text(out / "results.csv", groups_csv(groups, group_by))
    atomic_write_text(out / "runs.csv", runs_csv(runs, group_by))
    atomic_write_text(out / "results.tex", latex(groups, group_by))
    return text
