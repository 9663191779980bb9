"""Detection's files: ``suspects.csv`` (one row per training image), ``detection.json`` (rules, counts, metrics)
and ``score_histogram.png`` (scores of poisoned vs clean images per detector)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from utils.atomic_io import atomic_path, atomic_write_json, atomic_write_text

SUSPECTS_NAME = "suspects.csv"
SUMMARY_NAME = "detection.json"
HISTOGRAM_NAME = "score_histogram.png"
SUSPECT_COLUMNS = (
    "index",  # ImageFolder order of the training set
    "path",  # the source image
    "label",  # the label the (poisoned) training set gives it (class index)
    "class",  # that label's class folder
    "score",  # the variation detector's score (higher = more suspect)
    "flagged",  # 1 if the score is above the threshold
    "variation_prediction",  # the teacher's class on the image's variations (what relabelling gives it)
    "spectral_score",  # Spectral Signatures' score (the baseline)
    "spectral_flagged",
    "clustering_score",  # Activation Clustering's score (a second baseline)
    "clustering_flagged",
)


@dataclass
class DetectorResult:
    name: str  # detection.json key and histogram title
    scores: np.ndarray
    flagged: np.ndarray
    threshold: float
    rule: str  # how the threshold was chosen, in words
    metrics: dict | None  # against the truth, where it is known


def suspects_csv(paths: list[str], labels, classes, prediction, detectors: dict[str, DetectorResult]) -> str:
    ours, spectral = detectors["variations"], detectors["spectral_signatures"]
    clusters = detectors["activation_clustering"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUSPECT_COLUMNS)
    for i, path in enumerate(paths):
        writer.writerow(
            [
                i,
                path,
                int(labels[i]),
                classes[labels[i]],
                f"{ours.scores[i]:.6g}",
                int(ours.flagged[i]),
                int(prediction[i]),
                f"{spectral.scores[i]:.6g}",
                int(spectral.flagged[i]),
                f"{clusters.scores[i]:.6g}",
                int(clusters.flagged[i]),
            ]
        )
    return buffer.getvalue()


def read_suspects(folder: Path) -> list[dict]:
    """The rows of ``suspects.csv`` with ``index``, ``label``, ``flagged`` and ``variation_prediction`` as ints."""
    with (Path(folder) / SUSPECTS_NAME).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    ints = ("index", "label", "flagged", "variation_prediction", "spectral_flagged", "clustering_flagged")
    return [{**row, **{key: int(row[key]) for key in ints}} for row in rows]


def histogram(detectors: dict[str, DetectorResult], truth: np.ndarray | None, path: Path) -> None:
    """One panel per detector: score histograms of poisoned and clean images (all images without the truth),
    the threshold as a dashed line; counts on a log axis, so a few poisoned images stay visible."""
    figure = Figure(figsize=(5.0 * len(detectors), 3.6), layout="constrained")
    axes = figure.subplots(1, len(detectors), squeeze=False)[0]
    for axis, detector in zip(axes, detectors.values(), strict=True):
        scores = detector.scores
        bins = np.linspace(float(scores.min()), float(scores.max()) + 1e-9, 50)
        if truth is None:
            axis.hist(scores, bins=bins, color="tab:gray", label="all images")
        else:
            axis.hist(scores[~truth], bins=bins, color="tab:blue", alpha=0.6, label=f"clean ({int((~truth).sum())})")
            axis.hist(scores[truth], bins=bins, color="tab:red", alpha=0.6, label=f"poisoned ({int(truth.sum())})")
        if np.isfinite(detector.threshold):
            axis.axvline(detector.threshold, color="black", linestyle="--", label=f"threshold {detector.threshold:.3g}")
        axis.set_yscale("log")
        axis.set_title(detector.name.replace("_", " "))
        axis.set_xlabel("score (higher = more suspect)")
        axis.set_ylabel("images")
        axis.legend(fontsize=8)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)


def write_outputs(out: Path, suspects: str, summary: dict, detectors: dict, truth: np.ndarray | None) -> None:
    """The histogram and ``suspects.csv`` first, ``detection.json`` last: its presence means the set is complete."""
    out.mkdir(parents=True, exist_ok=True)
    histogram(detectors, truth, out / HISTOGRAM_NAME)
    atomic_write_text(out / SUSPECTS_NAME, suspects)
    atomic_write_json(out / SUMMARY_NAME, summary)
