"""One detection pass: inputs checked → the teacher on sources and variations → scores, flags, metrics → files."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from detection.activation_clustering import FLAG_SCORE, activation_clustering_scores
from detection.inputs import load_inputs
from detection.metrics import detection_metrics
from detection.outputs import DetectorResult, suspects_csv, write_outputs
from detection.scores import evidence_drop, prediction_on_variations
from detection.spectral import spectral_signature_scores
from detection.teacher_outputs import SourcesAndVariations, teacher_outputs
from detection.threshold import flag
from models.teacher_reference import ResizedInput, load_teacher, resolve_teacher

log = logging.getLogger(__name__)

SCORE = "log p(y | source) - mean over variations of log p(y | variation); y = the training label, p = teacher"
VARIATION_FLOOR = math.log(2)  # never flag an image whose variations keep more than half the source's evidence
SPECTRAL_FLOOR = 0.0  # Tran et al.'s scores have no natural scale: Otsu's split alone
RULES = {
    "variations": f"score > max(Otsu threshold of all scores, ln 2 = {VARIATION_FLOOR:.4f})",
    "spectral_signatures": "score > Otsu threshold of all scores",
    "activation_clustering": f"score >= {FLAG_SCORE:.2f}: the image's cluster holds at most 35 % of its class",
}


def default_output(variations: Path) -> Path:
    """``<variations>_detection`` beside the variations folder (a pipeline uses ``<setting>/<backend>/detection``)."""
    variations = Path(variations)
    return variations.with_name(f"{variations.name}_detection")


def _detector(name: str, scores: np.ndarray, floor: float | None, truth: np.ndarray | None) -> DetectorResult:
    """``floor`` None: Activation Clustering's own fixed rule; else Otsu's split, never below ``floor``."""
    if floor is None:
        flagged, threshold = scores >= FLAG_SCORE - 1e-12, FLAG_SCORE
    else:
        flagged, threshold = flag(scores, floor)
    metrics = detection_metrics(scores, flagged, truth) if truth is not None and truth.any() else None
    return DetectorResult(name, scores, flagged, threshold, RULES[name], metrics)


def _as_json(detector: DetectorResult) -> dict:
    threshold = detector.threshold if math.isfinite(detector.threshold) else None
    return {
        "threshold_rule": detector.rule,
        "threshold": threshold,
        "flagged": int(detector.flagged.sum()),
        "metrics": detector.metrics,
    }


def run_detection(
    teacher_dir: Path,
    variations: Path,
    train_root: Path | None = None,
    out: Path | None = None,
    device: str = "cpu",
    batch_size: int = 128,
    num_workers: int = 0,
) -> dict:
    """Score every training image with both detectors and write the outputs into ``out``; returns the summary."""
    started = time.perf_counter()
    inputs = load_inputs(teacher_dir, variations, train_root)
    out = Path(out) if out is not None else default_output(inputs.variations_dir)
    model, metadata = load_teacher(resolve_teacher(str(inputs.teacher_dir)))
    if metadata.get("image_size") and metadata["image_size"] != inputs.sources.image_size:
        model = ResizedInput(model, metadata["image_size"])
    data = SourcesAndVariations(inputs.sources, inputs.variation_paths)
    outputs = teacher_outputs(model, data, torch.device(device), batch_size, num_workers)
    labels = torch.from_numpy(inputs.labels)
    truth = inputs.truth
    drop = evidence_drop(outputs.source_logits, outputs.variation_logits, labels)
    features = outputs.features.numpy()
    spectral = spectral_signature_scores(features, inputs.labels)
    clusters = activation_clustering_scores(features, inputs.labels)
    detectors = {
        "variations": _detector("variations", drop, VARIATION_FLOOR, truth),
        "spectral_signatures": _detector("spectral_signatures", spectral, SPECTRAL_FLOOR, truth),
        "activation_clustering": _detector("activation_clustering", clusters, None, truth),
    }
    prediction = prediction_on_variations(outputs.variation_logits)
    summary = {
        "teacher": str(inputs.teacher_dir),
        "variations": str(inputs.variations_dir),
        "training_set": str(inputs.index.root),
        "num_images": len(inputs.labels),
        "num_variations": len(inputs.variation_paths[0]) if inputs.variation_paths else 0,
        "score": SCORE,
        "truth": inputs.truth_note,
        "num_poisoned": None if truth is None else int(truth.sum()),
        "detectors": {name: _as_json(detector) for name, detector in detectors.items()},
        "seconds": round(time.perf_counter() - started, 2),
    }
    paths = [path for path, _ in inputs.index.samples]
    suspects = suspects_csv(paths, inputs.labels, inputs.index.classes, prediction, detectors)
    write_outputs(out, suspects, summary, detectors, truth)
    log.info("detection: %s", describe(summary))
    log.info("detection: wrote %s (suspects.csv, detection.json, score_histogram.png)", out)
    return summary


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _auroc(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def describe(summary: dict) -> str:
    """One line per detector: flagged count and, where the truth is known, AUROC and TPR at 1 % / 5 % FPR."""
    lines = [f"{summary['num_images']} images, {summary['num_poisoned']} poisoned ({summary['truth']})"]
    for name, detector in summary["detectors"].items():
        text = f"  {name}: {detector['flagged']} flagged"
        metrics = detector["metrics"]
        if metrics is not None:
            text += (
                f"; AUROC {_auroc(metrics['auroc'])}, TPR {_percent(metrics['tpr_at_1pct_fpr'])} at 1 % FPR, "
                f"{_percent(metrics['tpr_at_5pct_fpr'])} at 5 % FPR; precision {_percent(metrics['precision'])}, "
                f"recall {_percent(metrics['recall'])}, F1 {_percent(metrics['f1'])}"
            )
        lines.append(text)
    return "\n".join(lines)
