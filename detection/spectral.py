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


def spectral_signature_scores(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One score per image (higher = more suspect); a class of one image scores 0."""
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    scores = np.zeros(len(labels), dtype=np.float64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            continue
        centred = features[members] - features[members].mean(axis=0)
        _, _, right = np.linalg.svd(centred, full_matrices=False)
        scores[members] = (centred @ right[0]) ** 2
    return scores
