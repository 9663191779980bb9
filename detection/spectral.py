"""Spectral Signatures (Tran, Li & Madry, NeurIPS 2018), the baseline detector, on the teacher's features.

Per class (the label the training set gives): centre the penultimate-layer features, take the top right singular
vector of the centred matrix, and score each image by its squared projection on it. Poisoned images of a class
share a direction (the trigger's) that dominates that class's spread, so they project far out.

The scores are Tran et al.'s, in feature units, and are compared across classes as they are (for one threshold,
AUROC and TPR over the whole training set). Dividing by a class's mean or median would make classes comparable
on paper but hurts here: poison makes up a large share of the target class (all-to-one), so it inflates that
class's mean and its images would be scaled down against the tails of the clean classes.
"""

from __future__ import annotations

import numpy as np


def class_principal_axes(features: np.ndarray, labels: np.ndarray, smallest: int):
    """Per class of at least ``smallest`` images: its indices, its centred features (float64) and their principal
    axes (the right singular vectors, as rows, largest first)."""
    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) >= smallest:
            centred = features[members] - features[members].mean(axis=0)
            yield members, centred, np.linalg.svd(centred, full_matrices=False)[2]


def spectral_signature_scores(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One score per image (higher = more suspect); a class of one image scores 0."""
    scores = np.zeros(len(labels), dtype=np.float64)
    for members, centred, axes in class_principal_axes(features, labels, smallest=2):
        scores[members] = (centred @ axes[0]) ** 2
    return scores
