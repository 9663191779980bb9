"""Metric functions, evaluate() on a fixed fake model, the training step, optimisers and schedulers."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from datasets.poison_plan import attack_targets
from training.compute import Compute
from training.evaluation import BackdoorEvaluator
from training.loop import Trainable, evaluate, train_one_epoch
from training.metrics import (
    accuracy,
    attack_success_rate,
    confusion_matrix,
    defense_effectiveness_rate,
    per_class_accuracy,
    robust_accuracy,
)
from training.objectives import SupervisedObjective
from training.optim import build_lr_scheduler, build_optimizer, step_scheduler
from utils.errors import TrainingError

CPU = Compute(torch.device("cpu"))


class PixelOracle(nn.Module):
    """Predicts the class written into pixel (0, 0) of channel 0 as ``class / 10``."""

    def forward(self, images):
        predicted = (images[:, 0, 0, 0] * 10).round().long()
        return nn.functional.one_hot(predicted, 4).float() * 5


def loader_for(predictions, labels, true_labels):
    images = torch.zeros(len(predictions), 3, 4, 4)
    images[:, 0, 0, 0] = torch.tensor(predictions, dtype=torch.float32) / 10
    dataset = TensorDataset(images, torch.tensor(labels), torch.tensor(true_labels))
    return DataLoader(dataset, batch_size=3)


def test_metric_functions_by_hand():
    cm = confusion_matrix(torch.tensor([0, 0, 1, 1, 2]), torch.tensor([0, 1, 1, 1, 0]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert accuracy(cm) == pytest.approx(3 / 5)
    assert per_class_accuracy(cm) == [0.5, 1.0, 0.0]
    targets = attack_targets(3, 0)  # classes 1 and 2 are attacked, towards 0
    assert targets == [None, 0, 0]
    assert attack_success_rate(cm, targets) == pytest.approx(1 / 3)  # row 0 (the target class) never counts
    assert robust_accuracy(cm, targets) == pytest.approx(2 / 3)
    assert math.isnan(accuracy(torch.zeros(3, 3, dtype=torch.int64)))


def test_asr_and_ra_ignore_target_class_rows_by_themselves():
    """The metric, not the test-set filter, keeps target-class images out of ASR and RA."""
    filtered = torch.tensor([[0, 0, 0], [3, 1, 0], [2, 0, 2]])
    with_target_rows = filtered + torch.tensor([[9, 4, 1], [0, 0, 0], [0, 0, 0]])  # triggered target-class images
    targets = attack_targets(3, 0)
    for cm in (filtered, with_target_rows):
        assert attack_success_rate(cm, targets) == pytest.approx(5 / 8)
        assert robust_accuracy(cm, targets) == pytest.approx(3 / 8)
    assert attack_success_rate(torch.ones(3, 3, dtype=torch.int64), [1, 2, 0]) == pytest.approx(1 / 3)  # any map


def test_der_formula():
    assert defense_effectiveness_rate(0.9, 1.0, 0.9, 0.1) == pytest.approx(0.95)
    assert defense_effectiveness_rate(0.9, 1.0, 0.8, 0.0) == pytest.approx(0.95)
    assert defense_effectiveness_rate(0.9, 0.1, 0.95, 0.5) == pytest.approx(0.5)  # no gain, no loss


def test_backdoor_metrics_on_fixed_model():
    # clean set: 6 images, 4 predicted right
    clean = loader_for([0, 1, 2, 3, 0, 0], [0, 1, 2, 3, 1, 2], [0, 1, 2, 3, 1, 2])
    # triggered set (target 0, no target-class images): 3 of 5 flipped to the target, 1 still right
    triggered = loader_for([0, 0, 0, 2, 1], [0] * 5, [1, 2, 3, 2, 3])
    evaluator = BackdoorEvaluator(clean, triggered, CPU, ["a", "b", "c", "d"], attack_targets(4, 0))
    result = evaluator(PixelOracle())
    assert result["clean_accuracy"] == pytest.approx(4 / 6)
    assert result["per_class_accuracy"] == {"a": 1.0, "b": 0.5, "c": 0.5, "d": 1.0}
    assert result["attack_success_rate"] == pytest.approx(3 / 5)
    assert result["robust_accuracy"] == pytest.approx(1 / 5)
    assert evaluate(PixelOracle(), triggered, CPU, 4)["confusion_matrix"].sum() == 5


def test_all_to_all_metrics_on_fixed_model():
    """ASR: class y predicted as (y + 1) mod n; RA: still y; every class counts, the target index plays no part."""
    clean = loader_for([0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3])
    # triggered set: every test image, scored against (y + 1) mod 4; 3 of 6 sent on, 2 still right, 1 elsewhere
    triggered = loader_for([1, 2, 1, 0, 3, 0], [1, 2, 3, 0, 0, 1], [0, 1, 2, 3, 3, 0])
    targets = attack_targets(4, 2, "all_to_all")
    result = BackdoorEvaluator(clean, triggered, CPU, ["a", "b", "c", "d"], targets)(PixelOracle())
    assert result["attack_success_rate"] == pytest.approx(3 / 6)  # rows 0→1, 1→2, 3→0
    assert result["robust_accuracy"] == pytest.approx(2 / 6)  # image of class 3 predicted 3, of class 0 predicted 0
    assert result["clean_accuracy"] == 1.0


def trainable_of(model, optimizer_spec) -> Trainable:
    return Trainable(model, build_optimizer(optimizer_spec, model.parameters()), None, CPU, CPU.grad_scaler())


def test_train_one_epoch_learns_and_reports():
    torch.manual_seed(0)
    images = torch.rand(64, 3, 4, 4)
    labels = (images[:, 0].mean((1, 2)) > 0.5).long()
    loader = DataLoader(TensorDataset(images, labels, labels), batch_size=16, shuffle=True)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    trainable = trainable_of(model, {"SGD": {"lr": 0.5}})
    first = train_one_epoch(trainable, loader, SupervisedObjective(), epoch=1, show_progress=False)
    for epoch in range(2, 15):
        last = train_one_epoch(trainable, loader, SupervisedObjective(), epoch=epoch, show_progress=False)
    assert last["loss"] < first["loss"]
    assert 0 <= last["accuracy"] <= 1 and last["images_per_second"] > 0 and last["lr"] == 0.5


def test_non_finite_loss_stops_training():
    images = torch.rand(8, 3, 4, 4)
    labels = torch.zeros(8, dtype=torch.long)
    loader = DataLoader(TensorDataset(images, labels, labels), batch_size=4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    trainable = trainable_of(model, {"SGD": {"lr": 0.1}})
    with pytest.raises(TrainingError, match="loss is nan at epoch 3, step 2"):
        train_one_epoch(trainable, loader, SupervisedObjective(), epoch=3, show_progress=False)


def test_any_optimizer_and_scheduler_by_name():
    params = [nn.Parameter(torch.zeros(2))]
    optimizer = build_optimizer({"AdamW": {"lr": 0.01, "weight_decay": 0.1}}, params)
    assert type(optimizer).__name__ == "AdamW" and optimizer.param_groups[0]["weight_decay"] == 0.1
    scheduler = build_lr_scheduler({"MultiStepLR": {"milestones": [2], "gamma": 0.1}}, optimizer)
    for _ in range(2):
        step_scheduler(scheduler, 1.0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.001)
    plateau = build_lr_scheduler({"ReduceLROnPlateau": {"patience": 0, "factor": 0.5}}, optimizer)
    step_scheduler(plateau, 1.0)
    step_scheduler(plateau, 2.0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0005)
    assert build_lr_scheduler(None, optimizer) is None
    with pytest.raises(ValueError, match=r"valid: .*SGD"):
        build_optimizer({"Adamm": {}}, params)
