"""The backdoor evaluation of a model: clean accuracy (+ per class), attack success rate, robust accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn
from torch.utils.data import DataLoader

from training.compute import Compute
from training.loop import evaluate
from training.metrics import accuracy, attack_success_rate, per_class_accuracy, robust_accuracy
from utils.stop_signals import GracefulStop


@dataclass(frozen=True)
class BackdoorEvaluator:
    """Scores any model on the clean and the triggered test set; ``evaluator(model)`` → dict of metrics."""

    clean: DataLoader
    triggered: DataLoader | None  # None without a backdoor block: no ASR / RA
    compute: Compute
    classes: list[str]
    targets: Sequence[int | None] | None  # per true class, the class the attack sends it to (None: not attacked)
    stop: GracefulStop | None = None  # a stop signal abandons the evaluation at the next batch

    def __call__(self, model: nn.Module) -> dict:
        num_classes = len(self.classes)
        clean = evaluate(model, self.clean, self.compute, num_classes, description="test (clean)", stop=self.stop)
        cm = clean["confusion_matrix"]
        result = {
            "clean_accuracy": accuracy(cm),
            "clean_loss": clean["loss"],
            "attack_success_rate": None,
            "robust_accuracy": None,
            "per_class_accuracy": dict(zip(self.classes, per_class_accuracy(cm), strict=True)),
        }
        if self.triggered is not None:
            triggered = evaluate(
                model, self.triggered, self.compute, num_classes, description="test (triggered)", stop=self.stop
            )
            result["attack_success_rate"] = attack_success_rate(triggered["confusion_matrix"], self.targets)
            result["robust_accuracy"] = robust_accuracy(triggered["confusion_matrix"], self.targets)
        return result
