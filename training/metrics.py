"""Metrics from confusion matrices, so that they add up exactly across batches and processes.

A confusion matrix ``cm[true, predicted]`` holds counts. On the triggered test set rows are the images'
true classes, and ``targets[k]`` is the class the attack sends class ``k`` to (``None``: class ``k`` is not
attacked, e.g. the target class itself in all-to-one attacks; its rows never count):

- clean accuracy (CA): ``trace(cm) / sum(cm)`` on the clean test set;
- attack success rate (ASR): share of attacked triggered images predicted as their class's target;
- robust accuracy (RA): share of the same images still predicted as their true class;
- defence effectiveness rate (DER): ``(max(0, ASR_t − ASR_s) − max(0, CA_t − CA_s) + 1) / 2``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def confusion_matrix(true: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts ``cm[t, p]`` as int64 (on the inputs' device)."""
    flat = true.to(torch.int64) * num_classes + predicted.to(torch.int64)
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> float:
    total = int(denominator)
    return float(numerator) / total if total else float("nan")


def accuracy(cm: torch.Tensor) -> float:
    return _ratio(cm.trace(), cm.sum())


def per_class_accuracy(cm: torch.Tensor) -> list[float]:
    return [_ratio(cm[k, k], cm[k].sum()) for k in range(cm.shape[0])]


def _attacked_rows(targets: Sequence[int | None]) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.tensor([k for k, target in enumerate(targets) if target is not None], dtype=torch.int64)
    return rows, torch.tensor([targets[k] for k in rows.tolist()], dtype=torch.int64)


def attack_success_rate(cm_triggered: torch.Tensor, targets: Sequence[int | None]) -> float:
    """Share of triggered images of attacked classes predicted as their class's target."""
    rows, target = _attacked_rows(targets)
    cm = cm_triggered.cpu()
    return _ratio(cm[rows, target].sum(), cm[rows].sum())


def robust_accuracy(cm_triggered: torch.Tensor, targets: Sequence[int | None]) -> float:
    """Share of triggered images of attacked classes still predicted as their true class."""
    rows, _ = _attacked_rows(targets)
    cm = cm_triggered.cpu()
    return _ratio(cm[rows, rows].sum(), cm[rows].sum())


def defense_effectiveness_rate(
    clean_accuracy_teacher: float, asr_teacher: float, clean_accuracy_student: float, asr_student: float
) -> float:
    asr_drop = max(0.0, asr_teacher - asr_student)
    accuracy_drop = max(0.0, clean_accuracy_teacher - clean_accuracy_student)
    return (asr_drop - accuracy_drop + 1) / 2
