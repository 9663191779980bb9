"""The demo's detection figures: how well each detector finds the poisoned training images (results.md/json)."""

from __future__ import annotations

import json
from pathlib import Path

from detection.outputs import HISTOGRAM_NAME, SUMMARY_NAME
from utils.report import markdown_table

BASELINES = {  # they read the teacher's features only: the same in every variations folder's detection
    "spectral_signatures": "Spectral Signatures (teacher's penultimate features)",
    "activation_clustering": "Activation Clustering (teacher's penultimate features)",
}
FIGURES = (
    ("auroc", "AUROC"),
    ("tpr_at_1pct_fpr", "TPR at 1 % FPR"),
    ("tpr_at_5pct_fpr", "TPR at 5 % FPR"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("f1", "F1"),
)


def detection_results(folders: dict[str, Path]) -> dict:
    """``{row name: {flagged, auroc, ...}}``: the variation detector per variations folder (``{name: detection
    folder}``), then the baselines once; plus the histogram paths."""
    summaries = {name: json.loads((Path(folder) / SUMMARY_NAME).read_text()) for name, folder in folders.items()}
    rows = {}
    for name, summary in summaries.items():
        rows[f"teacher on source vs. {name}"] = _row(summary["detectors"]["variations"])
    first = next(iter(summaries.values()))
    for key, name in BASELINES.items():
        rows[name] = _row(first["detectors"][key])
    return {
        "num_images": first["num_images"],
        "num_poisoned": first["num_poisoned"],
        "rows": rows,
        "histograms": {name: str(Path(folder) / HISTOGRAM_NAME) for name, folder in folders.items()},
    }


def _row(detector: dict) -> dict:
    metrics = detector["metrics"] or {}
    return {"flagged": detector["flagged"], **{key: metrics.get(key) for key, _ in FIGURES}}


def _cell(key: str, value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if key == "auroc" else f"{100 * value:.1f} %"


def detection_markdown(detection: dict, out: Path) -> str:
    header = ["detector", "flagged", *(title for _, title in FIGURES)]
    rows = [
        [name, str(row["flagged"]), *(_cell(key, row[key]) for key, _ in FIGURES)]
        for name, row in detection["rows"].items()
    ]
    pictures = ", ".join(
        f"`{Path(path).relative_to(out) if Path(path).is_relative_to(out) else path}` ({name})"
        for name, path in detection["histograms"].items()
    )
    return (
        "## Which training images are poisoned?\n\n"
        f"{detection['num_poisoned']} of the {detection['num_images']} training images are poisoned. The variation "
        "detector scores each by the drop of the teacher's log-probability of its training label from the source to "
        "its variation; flagged: above Otsu's threshold of the scores (at least ln 2). Precision, recall and F1 at "
        "that threshold; AUROC and TPR need no threshold.\n\n"
        f"{markdown_table(header, rows)}\n\n"
        f"Score histograms, poisoned vs clean: {pictures}.\n"
    )
