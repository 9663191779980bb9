"""The flagging rule, which needs no ground truth: Otsu's split of the scores, never below a floor.

Otsu's method (1979) picks the threshold that maximises the between-group variance of the two groups it makes,
i.e. the deepest valley between the clean and the suspect mode of a two-mode histogram. Poisoning makes the
scores two-moded (a few images with a large drop, most near 0); without poison there is one mode and Otsu would
still split it somewhere, which the floor prevents: an image whose score is below it is never flagged.
"""

from __future__ import annotations

import numpy as np


def otsu_threshold(scores: np.ndarray) -> float:
    """The threshold between two consecutive sorted scores that maximises the between-group variance.

    Exact (every split point is tried, O(n log n)); the midpoint of the best gap is returned. With fewer
    than two distinct values there is nothing to split: +inf (nothing is above it).
    """
    values = np.sort(np.asarray(scores, dtype=np.float64))
    values = values[np.isfinite(values)]
    n = len(values)
    if n < 2 or values[0] == values[-1]:
        return float("inf")
    cumulative = np.cumsum(values)
    low_count = np.arange(1, n)  # the lower group holds values[:k] for k = 1..n-1
    low_mean = cumulative[:-1] / low_count
    high_mean = (cumulative[-1] - cumulative[:-1]) / (n - low_count)
    between = low_count * (n - low_count) * (high_mean - low_mean) ** 2
    between[values[1:] == values[:-1]] = -1.0  # a split must fall between two different values
    k = int(np.argmax(between)) + 1
    return float((values[k - 1] + values[k]) / 2)


def flag(scores: np.ndarray, floor: float) -> tuple[np.ndarray, float]:
    """(flagged mask, threshold): scores above ``max(Otsu, floor)`` are flagged."""
    threshold = max(otsu_threshold(scores), floor)
    return np.asarray(scores) > threshold, threshold
