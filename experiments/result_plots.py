"""Plots of the aggregated results (PNG through matplotlib's ``Figure``, drawn by Agg: no display, no pyplot).

``teacher_vs_student.png``: CA and ASR of every model (teacher, students by variation backend, clean
student) per setting, as bars with ± one standard deviation over seeds (none for a single seed).
``rate_sweep.png`` (when the poisoning rate varies): CA and ASR against the rate, one line per model and
attack, with error bars. The titles say over how many seeds.
"""

from __future__ import annotations

import logging
from pathlib import Path

from matplotlib.figure import Figure

from experiments.aggregate import Group
from experiments.result_tables import split_keys
from utils.atomic_io import atomic_path

log = logging.getLogger(__name__)

PANELS = (("clean_accuracy", "clean accuracy (%)"), ("attack_success_rate", "attack success rate (%)"))
SETTING_KEYS = ("dataset_name", "architecture", "attack", "target_type", "poisoning_rate")  # x-axis labels
MODEL_KEYS = ("role", "variation_backend")  # one bar / line per model


def _label(group: Group, keys: list[str]) -> str:
    values = []
    for key in keys:
        value = group.keys.get(key)
        if value is not None:
            if key == "poisoning_rate":
                values.append(f"rate {100 * value:g} %")
            else:  # a distinguishing config key (backdoor.PatchBackdoor.trigger_size) by its last part
                values.append(str(value) if key in SETTING_KEYS else f"{key.rsplit('.', 1)[-1]} {value}")
    return "\n".join(values) or "all runs"


def _variation_keys(varying: list[str]) -> list[str]:
    """Distinguishing keys of the variation config (a strength sweep): they name a model, not a setting."""
    return [key for key in varying if key.startswith("variations.")]


def _setting_keys(varying: list[str]) -> list[str]:
    extra = [key for key in varying if key not in (*SETTING_KEYS, *MODEL_KEYS, *_variation_keys(varying))]
    return [key for key in SETTING_KEYS if key in varying] + extra


def _model(group: Group, variation_keys: list[str] = ()) -> str:
    role, backend = group.keys.get("role"), group.keys.get("variation_backend")
    details = [backend] if backend else []
    details += [_label(group, [key]) for key in variation_keys if group.keys.get(key) is not None]
    return f"{role.replace('_', ' ')} ({', '.join(details)})" if details else role.replace("_", " ")


def _value(group: Group, metric: str) -> tuple[float, float]:
    stat = group.stats[metric]
    return (100 * stat.mean, 100 * (stat.std or 0.0)) if stat else (float("nan"), 0.0)


def over_seeds(groups: list[Group]) -> str:
    """What the bars' heights and error bars are: a mean ± std over n seeds only where n > 1."""
    counts = sorted({stat.n for group in groups for metric, _ in PANELS if (stat := group.stats.get(metric))})
    if not counts or counts[-1] == 1:
        return "one run (seed) each, no error bars"
    if counts[0] == counts[-1]:
        return f"mean ± std over {counts[0]} seeds"
    return f"mean ± std over {counts[0]}–{counts[-1]} seeds (no error bar where a single seed)"


def _save(figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)


def bar_chart(groups: list[Group], varying: list[str], path: Path) -> Figure:
    label_keys = _setting_keys(varying) or ["attack"]
    variation_keys = _variation_keys(varying)
    settings = list(dict.fromkeys(_label(g, label_keys) for g in groups))
    models = list(dict.fromkeys(_model(g, variation_keys) for g in groups))
    width = 0.8 / len(models)
    figure = Figure(figsize=(max(8.0, 3.2 * len(settings)), 3.8), layout="constrained")
    axes = figure.subplots(1, 2, squeeze=False)
    for axis, (metric, title) in zip(axes[0], PANELS, strict=True):
        for m, model in enumerate(models):
            chosen = [
                (settings.index(_label(g, label_keys)), *_value(g, metric))
                for g in groups
                if _model(g, variation_keys) == model
            ]
            xs = [x + (m - (len(models) - 1) / 2) * width for x, _, _ in chosen]
            axis.bar(xs, [v for _, v, _ in chosen], width, yerr=[e for _, _, e in chosen], capsize=3, label=model)
        axis.set_xticks(range(len(settings)), settings)
        axis.set_ylim(0, 105)
        axis.set_ylabel(title)
        axis.grid(axis="y", alpha=0.3)
    axes[0][1].legend(fontsize="small", loc="upper right")
    figure.suptitle(f"teacher vs. students: {over_seeds(groups)}")
    _save(figure, path)
    return figure


def rate_chart(groups: list[Group], varying: list[str], path: Path) -> Figure:
    line_keys = [k for k in _setting_keys(varying) if k != "poisoning_rate"]
    lines: dict[str, list[Group]] = {}
    for group in groups:
        if group.keys.get("poisoning_rate") is not None:
            model = _model(group, _variation_keys(varying))
            name = " · ".join(filter(None, [_label(group, line_keys).replace("\n", " "), model]))
            lines.setdefault(name.removeprefix("all runs · "), []).append(group)
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    axes = figure.subplots(1, 2, squeeze=False)
    for axis, (metric, title) in zip(axes[0], PANELS, strict=True):
        for name, members in lines.items():
            members = sorted(members, key=lambda g: g.keys["poisoning_rate"])
            values = [_value(g, metric) for g in members]
            rates = [100 * g.keys["poisoning_rate"] for g in members]
            axis.errorbar(rates, [v for v, _ in values], yerr=[e for _, e in values], marker="o", capsize=3, label=name)
        axis.set_xlabel("poisoning rate (%)")
        axis.set_ylabel(title)
        axis.set_ylim(-2, 105)
        axis.grid(alpha=0.3)
    axes[0][1].legend(fontsize="small")
    figure.suptitle(f"attack and accuracy against the poisoning rate: {over_seeds(groups)}")
    _save(figure, path)
    return figure


def write_plots(groups: list[Group], group_by: tuple[str, ...], out: Path) -> list[Path]:
    """The plots that fit the groups; returns their paths."""
    if not groups or "role" not in group_by:
        log.info("plots: skipped (%s)", "no complete runs" if not groups else "--group-by has no role")
        return []
    varying, _ = split_keys(groups, group_by)
    written = [out / "teacher_vs_student.png"]
    bar_chart(groups, varying, written[0])
    if "poisoning_rate" in varying:
        written.append(out / "rate_sweep.png")
        rate_chart(groups, varying, written[1])
    return written
