"""Activation Clustering (Chen et al., 2018), a second baseline on the teacher's penultimate-layer features.

Per class (the label the training set gives): reduce the centred features to at most 10 dimensions (PCA here;
the paper uses ICA), split them into two clusters with k-means, and suspect the smaller cluster: poisoned images
of a class are activated by the trigger, not by the class, and gather apart. The paper calls a cluster poisoned
when it holds at most 35 % of its class. As a score per image, ``1 − 2 · (its cluster's share of the class)``:
near 1 in a tiny cluster, 0 for an even split, negative in the majority; flagged at share ≤ 0.35 (score ≥ 0.3).
"""

from __future__ import annotations

import numpy as np

from detection.spectral import class_principal_axes

DIMENSIONS = 10  # the paper's
SMALL_CLUSTER = 0.35  # the paper's relative-size rule: a cluster with at most this share of its class is poisoned
FLAG_SCORE = 1 - 2 * SMALL_CLUSTER
ITERATIONS = 50


def two_means(points: np.ndarray) -> np.ndarray:
    """Cluster labels 0/1 by Lloyd's k-means on PCA-reduced ``points`` (column 0: the top component), started from
    the two halves of a median split along that component: deterministic, and not pulled by single outliers as a
    farthest-point start would be."""
    low = points[:, 0] <= np.median(points[:, 0])
    if low.all():  # no spread along the top component (e.g. identical features): one cluster
        return np.zeros(len(points), dtype=np.int64)
    centres = np.stack([points[low].mean(axis=0), points[~low].mean(axis=0)])
    assignment = None
    for _ in range(ITERATIONS):
        new = ((points[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
        if assignment is not None and (new == assignment).all():
            break
        assignment = new
        for k in (0, 1):
            if (assignment == k).any():
                centres[k] = points[assignment == k].mean(axis=0)
    return assignment


def activation_clustering_scores(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One score per image (higher = more suspect); a class of fewer than 3 images scores 0."""
    scores = np.zeros(len(labels), dtype=np.float64)
    for members, centred, axes in class_principal_axes(features, labels, smallest=3):
        reduced = centred @ axes[:DIMENSIONS].T
        assignment = two_means(reduced)
        share = np.bincount(assignment, minlength=2)[assignment] / len(members)
        scores[members] = 1 - 2 * share
    return scores
