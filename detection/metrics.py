"""How well a detector's scores and flags match the truth (the teacher run's poisoned indices)."""

from __future__ import annotations

import numpy as np


def auroc(scores: np.ndarray, truth: np.ndarray) -> float | None:
    """Area under the ROC curve: the chance that a poisoned image outscores a clean one (ties count half).

    The Mann–Whitney form with mid-ranks; ``None`` without both poisoned and clean images.
    """
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=bool)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2  # mid-rank of a run of ties (ranks start at 1)
    wins = ranks[truth].sum() - positives * (positives + 1) / 2
    return float(wins / (positives * negatives))


def tpr_at_fpr(scores: np.ndarray, truth: np.ndarray, fpr: float) -> float | None:
    """The share of poisoned images flagged by the lowest threshold that flags at most ``fpr`` of the clean ones.

    Flagging means ``score > t``; ``t`` is the clean score at rank ``floor(fpr · clean)`` from the top, so ties
    with it are never flagged (the FPR reached may be below ``fpr``, never above).
    """
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=bool)
    clean = np.sort(scores[~truth])[::-1]
    if truth.sum() == 0 or len(clean) == 0:
        return None
    allowed = int(np.floor(fpr * len(clean) + 1e-9))
    threshold = clean[allowed] if allowed < len(clean) else -np.inf
    return float((scores[truth] > threshold).mean())


def confusion(flagged: np.ndarray, truth: np.ndarray) -> dict:
    flagged, truth = np.asarray(flagged, dtype=bool), np.asarray(truth, dtype=bool)
    return {
        "true_positives": int((flagged & truth).sum()),
        "false_positives": int((flagged & ~truth).sum()),
        "false_negatives": int((~flagged & truth).sum()),
        "true_negatives": int((~flagged & ~truth).sum()),
    }


def precision_recall_f1(flagged: np.ndarray, truth: np.ndarray) -> dict:
    """Precision, recall (= TPR) and F1 of the flags, and the FPR; ``None`` where a ratio has no denominator."""
    counts = confusion(flagged, truth)
    tp, fp, fn, tn = (counts[k] for k in ("true_positives", "false_positives", "false_negatives", "true_negatives"))
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    fpr = fp / (fp + tn) if fp + tn else None
    return {"precision": precision, "recall": recall, "f1": f1, "fpr": fpr, **counts}


def detection_metrics(scores: np.ndarray, flagged: np.ndarray, truth: np.ndarray) -> dict:
    """AUROC, TPR at 1 % and 5 % FPR (threshold-free), and precision / recall / F1 at the chosen threshold."""
    return {
        "auroc": auroc(scores, truth),
        "tpr_at_1pct_fpr": tpr_at_fpr(scores, truth, 0.01),
        "tpr_at_5pct_fpr": tpr_at_fpr(scores, truth, 0.05),
        **precision_recall_f1(flagged, truth),
    }
