"""The poison plan against the reference formula."""

import math

import numpy as np
import pytest

from datasets.poison_plan import fixed_poison_indices, index_mask, poison_candidates, random_subset

LABELS = np.repeat(np.arange(5), 20)  # 100 samples, 5 classes in ImageFolder order


def reference_subset(labels, target_idx, rate, poison_target_class, seed):
    """The reference implementation's selection, written out: global NumPy seed, then choice."""
    indices = range(len(labels)) if poison_target_class else np.argwhere(np.array(labels) != target_idx).flatten()
    np.random.seed(seed)  # noqa: NPY002 (this *is* what the reference does)
    return np.random.choice(indices, size=math.ceil(rate * len(indices)), replace=False)  # noqa: NPY002


@pytest.mark.parametrize("seed", [0, 42, 1234])
@pytest.mark.parametrize("poison_target_class", [False, True])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.33, 1.0])
def test_fixed_subset_equals_reference(seed, poison_target_class, rate):
    ours = fixed_poison_indices(LABELS, 2, rate, poison_target_class, seed)
    theirs = reference_subset(LABELS, 2, rate, poison_target_class, seed)
    np.testing.assert_array_equal(ours, np.sort(theirs))
    assert np.all(np.diff(ours) > 0)


def test_target_class_excluded_unless_asked():
    without = fixed_poison_indices(LABELS, 3, 1.0, False, 0)
    assert len(without) == 80 and not np.any(LABELS[without] == 3)
    with_target = fixed_poison_indices(LABELS, 3, 1.0, True, 0)
    assert len(with_target) == 100


def test_rate_zero_and_count_uses_ceil():
    assert len(fixed_poison_indices(LABELS, 0, 0.0, False, 0)) == 0
    assert len(fixed_poison_indices(LABELS, 0, 0.01, False, 0)) == 1  # ceil(0.8)
    assert len(fixed_poison_indices(np.repeat(np.arange(2), 30), 1, 0.1, False, 0)) == 3


def test_random_draw_is_seeded_and_respects_target_class():
    a = random_subset(poison_candidates(LABELS, 1, False), 0.5, 7)
    b = random_subset(poison_candidates(LABELS, 1, False), 0.5, 7)
    np.testing.assert_array_equal(a, b)
    assert not np.any(LABELS[a] == 1)
    assert 20 < len(a) < 60
    assert len(random_subset(poison_candidates(LABELS, 1, True), 1.0, 7)) == 100


def test_index_mask():
    mask = index_mask(np.array([1, 4]), 6)
    assert mask.tolist() == [False, True, False, False, True, False]
