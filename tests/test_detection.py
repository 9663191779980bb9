"""Detection of poisoned training images from the variations: scores, threshold, metrics, Spectral Signatures,
the refusal of foreign variations, the cleaned folder and the cleaned student in the pipeline."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import collect_results
import detect_poison
import generate_variations
import run_pipeline
from cli.runner import run_script
from config.schema import VariationConfig
from datasets.image_folder import scan_image_folder
from detection.activation_clustering import FLAG_SCORE, activation_clustering_scores
from detection.cleaning import build_cleaned_folder
from detection.metrics import auroc, detection_metrics, precision_recall_f1, tpr_at_fpr
from detection.scores import evidence_drop, prediction_on_variations
from detection.spectral import spectral_signature_scores
from detection.threshold import flag, otsu_threshold
from tests.conftest import make_image_folder, write_config
from tests.test_experiments import experiment_files

TARGET = 0
FIXTURE_COLOURS = [[(60 + 90 * k) % 256, (200 - 70 * k) % 256, (30 + 110 * k) % 256] for k in range(3)]


class TriggerReader(nn.Module):
    """A teacher stand-in with known answers: the target class where the bottom-right 3×3 patch is exactly the
    BadNets checkerboard, else the class whose fixture colour is nearest to the image's mean colour."""

    def __init__(self):
        super().__init__()
        self.colours = torch.tensor(FIXTURE_COLOURS, dtype=torch.float32) / 255
        i, j = torch.meshgrid(torch.arange(3), torch.arange(3), indexing="ij")
        self.checkerboard = ((i + j) % 2).float()
        self.head = nn.Linear(3, 3)  # the "penultimate features" are the one-hot scores
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(3))
            self.head.bias.zero_()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patch = images[:, :, -3:, -3:]
        triggered = (patch == self.checkerboard).flatten(1).all(dim=1)
        nearest = torch.cdist(images.mean(dim=(2, 3)), self.colours).argmin(dim=1)
        label = torch.where(triggered, torch.full_like(nearest, TARGET), nearest)
        return self.head(12.0 * nn.functional.one_hot(label, 3).float())


@pytest.fixture
def stand_in_teacher(monkeypatch):
    monkeypatch.setattr("detection.run.load_teacher", lambda source: (TriggerReader().eval(), {"image_size": 16}))


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """The tiny pipeline (BadNets 3×3 at 50 %, classical variations) with detection by the stand-in teacher and
    the cleaned student (drop)."""
    root = tmp_path_factory.mktemp("detection")
    data = {
        "train": make_image_folder(root / "train", per_class=6),
        "test": make_image_folder(root / "test", per_class=4),
    }
    experiment = experiment_files(root, data)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WANDB_MODE", "disabled")
        env.setattr("detection.run.load_teacher", lambda source: (TriggerReader().eval(), {"image_size": 16}))
        assert run_pipeline.main(["-c", str(experiment), "--detect", "--cleaned-student", "drop"]) == 0
    (folder,) = (root / "experiments").iterdir()
    teacher = next(p for p in (folder / "teacher").iterdir() if (p / "summary.json").is_file())
    poisoned = json.loads((teacher / "poison_indices.json").read_text())
    return {"root": root, "data": data, "folder": folder, "teacher": teacher, "poisoned": poisoned}


def suspects(folder: Path) -> list[dict]:
    with (folder / "suspects.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


# --- scores, threshold and metrics on hand-made numbers -------------------------------------------------------


def test_scores_flag_exactly_the_images_whose_prediction_flips_on_their_variations():
    rng = np.random.default_rng(0)
    n, k, classes, flips = 40, 3, 4, [3, 17, 29]
    labels = torch.from_numpy(rng.integers(0, classes, n))
    source = 10.0 * nn.functional.one_hot(labels, classes).float() + torch.from_numpy(rng.normal(0, 0.3, (n, classes)))
    variations = source[:, None, :].repeat(1, k, 1) + torch.from_numpy(rng.normal(0, 0.3, (n, k, classes))).float()
    for i in flips:  # the variations show another class
        other = (labels[i] + 1) % classes
        variations[i] = 10.0 * nn.functional.one_hot(other, classes).float()
    scores = evidence_drop(source.float(), variations.float(), labels)
    flagged, _ = flag(scores, math.log(2))
    assert np.flatnonzero(flagged).tolist() == flips
    truth = np.isin(np.arange(n), flips)
    assert auroc(scores, truth) == 1.0
    assert tpr_at_fpr(scores, truth, 0.01) == 1.0
    assert prediction_on_variations(variations)[flips].tolist() == [(int(labels[i]) + 1) % classes for i in flips]
    # the score is the drop of the label's log-probability, averaged over the variations
    expected = (
        torch.log_softmax(source.double(), 1)[3, labels[3]]
        - torch.log_softmax(variations[3].double(), 1)[:, labels[3]].mean()
    )
    assert scores[3] == pytest.approx(float(expected))


def test_one_variation_that_keeps_the_trigger_does_not_hide_the_others():
    labels = torch.tensor([0, 0])
    source = torch.tensor([[8.0, 0.0], [8.0, 0.0]])
    kept, removed = [8.0, 0.0], [0.0, 8.0]
    variations = torch.tensor([[kept, removed, removed], [kept, kept, kept]])
    scores = evidence_drop(source, variations, labels)
    assert scores[0] > 5 and abs(scores[1]) < 1e-9


def test_metrics_against_a_known_confusion():
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.05])
    truth = np.array([False, False, True, True, True, False])
    # pairs (poisoned, clean) won: 0.35 beats 0.1, 0.05; 0.8 beats all 3; 0.4 beats 0.1, 0.05 and ties 0.4
    assert auroc(scores, truth) == pytest.approx((2 + 3 + 2.5) / 9)
    assert tpr_at_fpr(scores, truth, 0.0) == pytest.approx(1 / 3)  # above the highest clean score (0.4): only 0.8
    assert tpr_at_fpr(scores, truth, 0.34) == pytest.approx(1.0)  # one clean image may pass: threshold 0.1
    flagged = np.array([False, True, True, True, False, False])  # TP 2, FP 1, FN 1, TN 2
    got = precision_recall_f1(flagged, truth)
    assert (got["true_positives"], got["false_positives"], got["false_negatives"], got["true_negatives"]) == (
        2,
        1,
        1,
        2,
    )
    assert got["precision"] == pytest.approx(2 / 3) and got["recall"] == pytest.approx(2 / 3)
    assert got["f1"] == pytest.approx(2 / 3) and got["fpr"] == pytest.approx(1 / 3)
    nothing = detection_metrics(scores, np.zeros(6, dtype=bool), truth)
    assert nothing["precision"] is None and nothing["f1"] is None and nothing["recall"] == 0.0
    assert auroc(scores, np.zeros(6, dtype=bool)) is None


def test_otsu_splits_two_modes_and_the_floor_keeps_one_mode_unflagged():
    two_modes = np.r_[np.linspace(0.0, 0.3, 50), np.linspace(9.0, 11.0, 5)]
    assert 0.3 < otsu_threshold(two_modes) < 9.0
    assert flag(two_modes, math.log(2))[0].sum() == 5
    one_mode = np.random.default_rng(1).uniform(0.0, 0.2, 200)
    flagged, threshold = flag(one_mode, math.log(2))
    assert threshold == math.log(2) and not flagged.any()
    assert otsu_threshold(np.ones(4)) == math.inf


def test_spectral_signatures_single_out_a_shifted_group_within_its_class():
    rng = np.random.default_rng(2)
    features = rng.normal(0, 1, (120, 16))
    labels = np.repeat([0, 1], 60)
    shifted = np.arange(50, 60)  # ten images of class 0 share an offset along one direction
    features[shifted, 3] += 8.0
    scores = spectral_signature_scores(features, labels)
    assert set(np.argsort(scores)[-10:]) == set(shifted)
    centred = features[labels == 1] - features[labels == 1].mean(axis=0)
    top = np.linalg.svd(centred)[2][0]
    assert scores[labels == 1] == pytest.approx((centred @ top) ** 2)  # Tran et al.'s score, in feature units


def test_activation_clustering_suspects_a_small_separate_cluster_only():
    rng = np.random.default_rng(3)
    features = rng.normal(0, 1, (120, 32))
    labels = np.repeat([0, 1], 60)
    apart = np.arange(0, 12)  # 20 % of class 0, activated elsewhere
    features[apart] += 6.0
    scores = activation_clustering_scores(features, labels)
    assert np.flatnonzero(scores >= FLAG_SCORE).tolist() == apart.tolist()
    assert scores[apart] == pytest.approx(1 - 2 * 12 / 60)


# --- the detection step on real files ----------------------------------------------------------------------


def test_pipeline_detection_flags_exactly_the_poisoned_images(setting):
    detection = setting["folder"] / "classical" / "detection"
    rows = suspects(detection)
    index = scan_image_folder(setting["data"]["train"])
    assert [int(r["index"]) for r in rows] == list(range(len(index)))
    assert [r["path"] for r in rows] == [path for path, _ in index.samples]
    poisoned = setting["poisoned"]
    assert len(poisoned) == 6
    assert [int(r["index"]) for r in rows if r["flagged"] == "1"] == poisoned
    assert all(int(rows[i]["label"]) == TARGET for i in poisoned)  # the label the poisoned set gives
    summary = json.loads((detection / "detection.json").read_text())
    ours = summary["detectors"]["variations"]
    assert ours["flagged"] == 6 and "Otsu" in ours["threshold_rule"]
    assert ours["metrics"]["auroc"] == 1.0 and ours["metrics"]["tpr_at_1pct_fpr"] == 1.0
    assert ours["metrics"]["precision"] == ours["metrics"]["recall"] == ours["metrics"]["f1"] == 1.0
    for baseline in ("spectral_signatures", "activation_clustering"):
        assert set(summary["detectors"][baseline]["metrics"]) >= {"auroc", "tpr_at_5pct_fpr", "f1"}
    assert {"spectral_score", "clustering_flagged"} <= set(rows[0])
    assert (detection / "score_histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_cleaned_student_trains_without_the_flagged_images(setting):
    variant = setting["folder"] / "classical"
    cleaned = variant / "cleaned_variations_drop"
    manifest = [json.loads(line) for line in (variant / "variations" / "manifest.jsonl").read_text().splitlines()]
    names = {Path(path).relative_to(cleaned).as_posix() for path, _ in scan_image_folder(cleaned).samples}
    poisoned_outputs = {r["output"] for r in manifest if r["index"] in setting["poisoned"]}
    assert names == {r["output"] for r in manifest} - poisoned_outputs
    (run,) = [p for p in (variant / "cleaned_student").iterdir() if (p / "summary.json").is_file()]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert Path(config["dataset"]["root_train"]) == cleaned
    assert json.loads((run / "summary.json").read_text())["setting"]["role"] == "cleaned_student"
    assert "cleaned student" in (variant / "results.md").read_text()


def test_a_dry_run_after_the_run_says_detection_and_the_cleaned_student_are_complete(setting, capsys):
    experiment = setting["root"] / "experiment.yaml"
    capsys.readouterr()
    assert run_pipeline.main(["-c", str(experiment), "--cleaned-student", "drop", "--dry-run"]) == 0
    said = capsys.readouterr().err
    assert "  detection: complete, skipped" in said and "  cleaned_student: complete, skipped" in said
    assert run_pipeline.main(["-c", str(experiment), "--cleaned-student", "relabel", "--dry-run"]) == 0
    assert "  cleaned_student: would run" in capsys.readouterr().err


def test_collect_results_has_a_cleaned_student_row(setting, tmp_path):
    assert collect_results.main([str(setting["root"] / "experiments"), "--out", str(tmp_path)]) == 0
    with (tmp_path / "results.csv").open(newline="") as handle:
        roles = [row["role"] for row in csv.DictReader(handle)]
    assert roles == ["teacher", "student", "cleaned_student"]


def test_relabelling_files_flagged_images_under_the_teachers_class_on_their_variation(setting, tmp_path):
    variant = setting["folder"] / "classical"
    cleaned = tmp_path / "relabelled"
    block = build_cleaned_folder(variant / "variations", variant / "detection", cleaned, "relabel")
    assert block["relabelled"] == 6 and block["dropped"] == 0
    index = scan_image_folder(setting["data"]["train"])
    files = {Path(path).relative_to(cleaned).as_posix() for path, _ in scan_image_folder(cleaned).samples}
    assert len(files) == len(index)
    manifest = [json.loads(line) for line in (variant / "variations" / "manifest.jsonl").read_text().splitlines()]
    for record in manifest:
        if record["index"] in setting["poisoned"]:  # filed under the target by the attack, back home now
            assert record["class"] == index.classes[TARGET] != record["source_class"]
            assert f"{record['source_class']}/{Path(record['output']).name}" in files
            assert record["output"] not in files
        else:
            assert record["output"] in files
    assert yaml.safe_load((cleaned / "config.yaml").read_text())["cleaning"]["mode"] == "relabel"


def test_detect_poison_script_writes_its_outputs(setting, stand_in_teacher, tmp_path, capsys):
    variations = setting["folder"] / "classical" / "variations"
    argv = ["--teacher", str(setting["teacher"]), "--variations", str(variations), "--out", str(tmp_path / "d")]
    assert detect_poison.main([*argv, "--clean", "drop", "--cleaned-out", str(tmp_path / "c")]) == 0
    assert [int(r["index"]) for r in suspects(tmp_path / "d") if r["flagged"] == "1"] == setting["poisoned"]
    assert len(scan_image_folder(tmp_path / "c")) == len(scan_image_folder(variations)) - 6
    assert "cleaned training folder (drop: 6 flagged)" in capsys.readouterr().out


def _variations_from(setting, tmp_path: Path, name: str, **changes) -> Path:
    teacher = yaml.safe_load((setting["teacher"] / "config.yaml").read_text())
    config = {
        "seed": teacher["seed"],
        "output_folder": str(tmp_path / name),
        "dataset": {"root": teacher["dataset"]["root_train"], "image_size": 16, "batch_size": 8, "num_workers": 0},
        "backdoor": teacher["backdoor"],
        "diffusion": {"backend": "classical", "height": 16, "width": 16},
        "device": "cpu",
    }
    for key, value in changes.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and key != "backdoor" else value
    path = write_config(tmp_path / f"{name}.yaml", config)
    assert (
        run_script(VariationConfig, generate_variations.generate, generate_variations.parser(), ["-c", str(path)]) == 0
    )
    return tmp_path / name


@pytest.mark.parametrize(
    ("what", "changes", "message"),
    [
        ("seed", {"seed": 3}, "another seed than the teacher: teacher ({teacher}) has 0, variations ({v}) has 3"),
        (
            "attack",
            {"backdoor": {"target_idx": 0, "poisoning_rate": 0.5, "BlendedBackdoor": {"blend_ratio": 0.2}}},
            "another attack than the teacher: teacher ({teacher}) has 'PatchBackdoor', variations ({v}) has "
            "'BlendedBackdoor'",
        ),
        ("dataset", {}, "another dataset than the training set: variations ({v}) from {other}"),
    ],
)
def test_variations_of_another_setting_are_refused_naming_both_values(
    setting, tmp_path, capsys, what, changes, message
):
    other = make_image_folder(tmp_path / "other_train", per_class=5)
    if what == "dataset":
        changes = {"dataset": {"root": str(other)}}
    variations = _variations_from(setting, tmp_path, what, **changes)
    capsys.readouterr()
    out = tmp_path / "detection_out"
    argv = ["--teacher", str(setting["teacher"]), "--variations", str(variations), "--out", str(out)]
    assert detect_poison.main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert message.format(teacher=setting["teacher"], v=variations, other=other) in lines[0]
    assert not out.exists()
