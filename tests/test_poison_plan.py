"""The poison plan against the reference formula; clean-label, all-to-all and WaNet cross samples."""

import math

import numpy as np
import pytest

from datasets.poison_plan import (
    Targeting,
    attack_targets,
    cross_indices,
    fixed_poison_indices,
    fixed_subset,
    index_mask,
    poison_candidates,
    random_subset,
)

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


def test_clean_label_candidates_are_the_target_class_and_labels_stay():
    targeting = Targeting(num_classes=5, target_idx=3, clean_label=True)
    candidates = targeting.candidates(LABELS)
    np.testing.assert_array_equal(candidates, np.arange(60, 80))  # class 3 in ImageFolder order
    chosen = fixed_subset(candidates, 0.25, 11)
    np.random.seed(11)  # noqa: NPY002 (the reference's formula, written out)
    expected = np.random.choice(np.arange(60, 80), size=math.ceil(0.25 * 20), replace=False)  # noqa: NPY002
    np.testing.assert_array_equal(chosen, np.sort(expected))
    assert [targeting.poisoned_label(k) for k in range(5)] == [0, 1, 2, 3, 4]  # labels never change
    assert [targeting.may_poison(k) for k in range(5)] == [False, False, False, True, False]
    assert targeting.targets() == [3, 3, 3, None, 3]  # tested like any all-to-one attack


def test_all_to_all_poisons_every_class_towards_the_next():
    targeting = Targeting(num_classes=5, target_idx=2, target_type="all_to_all")
    np.testing.assert_array_equal(targeting.candidates(LABELS), np.arange(100))
    assert [targeting.poisoned_label(k) for k in range(5)] == [1, 2, 3, 4, 0]
    assert targeting.targets() == attack_targets(5, 2, "all_to_all") == [1, 2, 3, 4, 0]
    assert all(targeting.may_poison(k) for k in range(5))
    all_to_one = Targeting(num_classes=5, target_idx=2)
    np.testing.assert_array_equal(all_to_one.candidates(LABELS), poison_candidates(LABELS, 2, False))
    assert [all_to_one.poisoned_label(k) for k in range(5)] == [2] * 5


def test_cross_samples_are_other_images_in_the_papers_count():
    poisoned = fixed_poison_indices(LABELS, 0, 0.1, False, 3)  # 8 images
    cross = cross_indices(100, poisoned, 2.0, 3)
    assert len(cross) == 16 and not set(cross) & set(poisoned) and np.all(np.diff(cross) > 0)
    np.testing.assert_array_equal(cross, cross_indices(100, poisoned, 2.0, 3))  # seeded
    assert len(cross_indices(100, poisoned, 0.5, 3)) == 4 and len(cross_indices(100, poisoned, 1.99, 3)) == 15
    assert len(cross_indices(10, np.arange(6), 2.0, 3)) == 4  # capped at the images left
