"""Training objectives: cross-entropy for the teacher, knowledge distillation for the student."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.classifier_factory import split_outputs


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    alpha: float,
    temperature: float,
    ce_on_scaled_logits: bool = False,
) -> torch.Tensor:
    """``alpha · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − alpha) · CE(s, y)`` (Hinton et al., 2015).

    The KL term is averaged over the batch; ``T²`` keeps its gradient scale independent of ``T``. The
    reference implementation feeds the temperature-scaled log-probabilities ``log_softmax(s/T)`` to the
    cross-entropy; ``ce_on_scaled_logits=True`` reproduces that, the default uses the raw logits.
    """
    scaled_log_probs = F.log_softmax(student_logits.float() / temperature, dim=1)
    teacher_probs = F.softmax(teacher_logits.float() / temperature, dim=1)
    kd = F.kl_div(scaled_log_probs, teacher_probs, reduction="batchmean") * temperature**2
    ce_input = scaled_log_probs if ce_on_scaled_logits else student_logits.float()
    ce = F.cross_entropy(ce_input, labels)
    return alpha * kd + (1 - alpha) * ce


class SupervisedObjective:
    """Cross-entropy on the labels; Inception's auxiliary logits add ``aux_weight`` × their own CE."""

    def __init__(self, aux_weight: float = 1.0):
        self.aux_weight = aux_weight

    def __call__(self, outputs, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits, aux = split_outputs(outputs)
        loss = F.cross_entropy(logits.float(), labels)
        if aux is not None:
            loss = loss + self.aux_weight * F.cross_entropy(aux.float(), labels)
        return loss


class DistillationObjective:
    """Distil a frozen teacher into the student on the very batch the student sees.

    ``settings`` carries ``alpha``, ``temperature`` and ``ce_on_scaled_logits`` (the config's ``distillation``).
    """

    def __init__(self, teacher: nn.Module, settings, aux_weight: float = 1.0):
        self.teacher = teacher.eval().requires_grad_(False)
        self.settings = settings
        self.aux_weight = aux_weight

    def _loss(self, student_logits, teacher_logits, labels):
        s = self.settings
        return distillation_loss(student_logits, teacher_logits, labels, s.alpha, s.temperature, s.ce_on_scaled_logits)

    def __call__(self, outputs, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.teacher.eval()  # stays frozen even if someone calls .train() on a parent module
        with torch.no_grad():
            teacher_logits, _ = split_outputs(self.teacher(images))
        logits, aux = split_outputs(outputs)
        loss = self._loss(logits, teacher_logits, labels)
        if aux is not None:
            loss = loss + self.aux_weight * self._loss(aux, teacher_logits, labels)
        return loss
