"""Metrics from confusion matrices, so that they add up exactly across batches and processes.

A confusion matrix ``cm[true, predicted]`` holds counts. On the triggered test set (non-target images
with the trigger), rows are the images' true classes:

- clean accuracy (CA): ``trace(cm) / sum(cm)`` on the clean test set;
- attack success rate (ASR): share of triggered images predicted as the target class;
- robust accuracy (RA): share of triggered images still predicted as their true class;
- defence effectiveness rate (DER): ``(max(0, ASR_t − ASR_s) − max(0, CA_t − CA_s) + 1) / 2``.
"""

from __future__ import annotations

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


def attack_success_rate(cm_triggered: torch.Tensor, target_idx: int) -> float:
    return _ratio(cm_triggered[:, target_idx].sum(), cm_triggered.sum())


def robust_accuracy(cm_triggered: torch.Tensor) -> float:
    return accuracy(cm_triggered)


def defense_effectiveness_rate(
    clean_accuracy_teacher: float, asr_teacher: float, clean_accuracy_student: float, asr_student: float
) -> float:
    asr_drop = max(0.0, asr_teacher - asr_student)
    accuracy_drop = max(0.0, clean_accuracy_teacher - clean_accuracy_student)
    return (asr_drop - accuracy_drop + 1) / 2
