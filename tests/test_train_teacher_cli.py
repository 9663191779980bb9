"""End to end: the real train_teacher.py on tiny data, with the real wandb library offline."""

import json
import platform
import socket
import subprocess
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from datasets.image_folder import scan_image_folder
from datasets.poison_plan import fixed_poison_indices
from models.classifier_factory import classifier_from_checkpoint
from tests import wandb_records
from tests.conftest import REPO, run_script, teacher_config_dict, write_config


def git_head() -> str | None:
    """The checkout's commit as git itself says it (None outside a git checkout, e.g. a Docker image)."""
    found = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else None


def test_teacher_run_directory_and_wandb_offline(tmp_path, image_data):
    config = teacher_config_dict(
        image_data,
        tmp_path / "runs",
        training={"num_epochs": 2, "eval_every": 1, "compile": True},
        wandb={"enable_logging": True, "args": {"project": "tests", "name": "tiny_teacher"}},
    )
    config_path = write_config(tmp_path / "teacher.yaml", config)
    result = run_script(tmp_path, "train_teacher.py", "-c", str(config_path), "--set", "seed=3")
    assert result.returncode == 0, result.stderr
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("tiny_teacher_")
    run_dir = runs[0]
    for name in (
        "config.yaml",
        "poison_indices.json",
        "metrics.jsonl",
        "summary.json",
        "model.safetensors",
        "samples.png",
    ):
        assert (run_dir / name).is_file(), name

    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["seed"] == 3 and resolved["model"]["num_classes"] == 3
    # what ran: the defaults ask for bf16, channels_last (and the config for compile), which act only on CUDA
    assert config["training"]["compile"] and "mixed_precision" not in config["training"]
    ran = {key: resolved["training"][key] for key in ("mixed_precision", "channels_last", "compile")}
    assert ran == {"mixed_precision": "none", "channels_last": False, "compile": False}

    labels = scan_image_folder(image_data["train"]).labels
    expected = fixed_poison_indices(labels, 0, 0.5, False, 3).tolist()
    assert json.loads((run_dir / "poison_indices.json").read_text()) == expected
    assert len(expected) == 6  # ceil(0.5 · 12 non-target images)

    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2]
    assert "test/attack_success_rate" in lines[0]  # eval_every: 1 (the last epoch is the final evaluation)
    assert all(np.isfinite(line["train/loss"]) and 0 <= line["train/accuracy"] <= 1 for line in lines)

    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("clean_accuracy", "attack_success_rate", "robust_accuracy"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["num_poisoned"] == 6 and set(summary["per_class_accuracy"]) == {"cat", "dog", "frog"}
    environment = summary["environment"]  # what produced these numbers
    assert environment["python"] == platform.python_version() and environment["device"] == "cpu"
    assert environment["packages"]["torch"] == package_metadata.version("torch")
    assert environment["cuda"] == torch.version.cuda and environment["cuda_available"] == torch.cuda.is_available()
    assert environment["command"].endswith(f"train_teacher.py -c {config_path} --set seed=3")
    assert environment["host"] == socket.gethostname() and environment["git_commit"] == git_head()

    _, metadata = classifier_from_checkpoint(run_dir / "model.safetensors")
    assert metadata["class_names"] == ["cat", "dog", "frog"] and metadata["image_size"] == 16

    preview = np.array(Image.open(run_dir / "samples.png"))
    assert preview.shape[0] > preview.shape[1] / 8  # two rows of images

    records = wandb_records.read_records(wandb_records.offline_run_file(run_dir))
    history = wandb_records.history(records)
    epochs = [row for row in history if "train/loss" in row]
    assert [row["train/loss"] for row in epochs] == [line["train/loss"] for line in lines]
    assert any("samples/clean_vs_triggered/_type" in row for row in history)
    wb_summary = wandb_records.summary(records)
    assert wb_summary["attack_success_rate"] == summary["attack_success_rate"]
    wb_config = wandb_records.config(records)
    assert wb_config["checkpoint_artifact"].startswith("model-") and wb_config["backdoor"]["target_idx"] == 0
    flat = [wb_config[key] for key in ("attack", "poisoning_rate", "target_type", "role", "seed")]
    assert flat == ["PatchBackdoor", 0.5, "all_to_one", "teacher", 3]  # the flat keys W&B's table groups by
    assert summary["setting"]["role"] == "teacher" and summary["setting"]["variation_backend"] is None
    (artifact,) = wandb_records.artifacts(records)
    assert artifact.type == "model" and [m.path for m in artifact.manifest.contents] == ["model.safetensors"]
    # W&B staged a full copy of every logged checkpoint under its data folder (209 MB after a dozen tiny runs);
    # the artifact's file is now read from the run directory when it is uploaded
    assert Path(artifact.manifest.contents[0].local_path) == run_dir / "model.safetensors"
    checkpoint_size = (run_dir / "model.safetensors").stat().st_size
    outside = [tmp_path / "wandb_data", tmp_path / "wandb_cache"]  # WANDB_DATA_DIR, WANDB_CACHE_DIR (script_env)
    assert [
        p for folder in outside for p in folder.rglob("*") if p.is_file() and p.stat().st_size >= checkpoint_size
    ] == []

    assert "attack success rate (ASR)" in result.stderr  # the final table
    # the offline run's upload command is also the last line, not only scrolled away at the start
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("W&B: the run was logged offline; upload it with: wandb sync ")
    )


def test_teacher_without_backdoor_and_with_blended_late_trigger(tmp_path, image_data):
    """No backdoor block: clean training, ASR not applicable. Blended after the transforms also runs."""
    clean = teacher_config_dict(image_data, tmp_path / "clean_runs")
    del clean["backdoor"]
    result = run_script(tmp_path, "train_teacher.py", "-c", str(write_config(tmp_path / "a.yaml", clean)))
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "clean_runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["attack_success_rate"] is None and summary["num_poisoned"] == 0

    blended = teacher_config_dict(
        image_data,
        tmp_path / "blended_runs",
        backdoor={"poison_first": False, "random_poisoning": True, "PatchBackdoor": None, "BlendedBackdoor": {}},
        transformations={"RandomHorizontalFlip": {"p": 0.5}, "ColorJitter": {"brightness": 0.1}},
    )
    result = run_script(tmp_path, "train_teacher.py", "-c", str(write_config(tmp_path / "b.yaml", blended)))
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "blended_runs").iterdir()
    assert json.loads((run_dir / "poison_indices.json").read_text()) == []  # drawn per fetch
    assert 0 <= json.loads((run_dir / "summary.json").read_text())["attack_success_rate"] <= 1


def test_wanet_all_to_all_teacher_and_student_report_the_mode(tmp_path, image_data):
    """Noise-mode cross samples in the run directory; all-to-all named in summary.json, the table and W&B."""
    backdoor = {"target_type": "all_to_all", "poisoning_rate": 0.25, "PatchBackdoor": None, "WaNetBackdoor": {}}
    config = teacher_config_dict(
        image_data,
        tmp_path / "runs",
        backdoor=backdoor,
        wandb={"enable_logging": True, "args": {"project": "tests"}},
    )
    result = run_script(tmp_path, "train_teacher.py", "-c", str(write_config(tmp_path / "teacher.yaml", config)))
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    poisoned = json.loads((run_dir / "poison_indices.json").read_text())
    cross = json.loads((run_dir / "cross_indices.json").read_text())
    assert len(poisoned) == 5 and len(cross) == 10 and cross == sorted(cross) and not set(poisoned) & set(cross)
    summary = json.loads((run_dir / "summary.json").read_text())
    mode = {"name": "WaNetBackdoor", "target_type": "all_to_all", "target_idx": 0, "clean_label": False}
    assert summary["attack"] == mode and summary["num_poisoned"] == 5 and summary["num_cross"] == 10
    assert "attack: WaNetBackdoor, all-to-all: ASR counts class y predicted as (y + 1) mod n" in result.stderr
    assert "12 triggered test images" in result.stderr  # every test image, not only the non-target ones
    records = wandb_records.read_records(wandb_records.offline_run_file(run_dir))
    assert wandb_records.summary(records)["attack/target_type"] == "all_to_all"
    assert wandb_records.config(records)["backdoor"]["target_type"] == "all_to_all"

    # the student names the teacher's attack with rate 0: its triggered test set is the all-to-all one too
    config["backdoor"]["poisoning_rate"] = 0.0
    config.update(distillation={"teacher_model": str(run_dir)}, wandb={"enable_logging": False})
    config["training"]["save_path"] = str(tmp_path / "students")
    result = run_script(tmp_path, "train_student.py", "-c", str(write_config(tmp_path / "student.yaml", config)))
    assert result.returncode == 0, result.stderr
    (student_dir,) = (tmp_path / "students").iterdir()
    student = json.loads((student_dir / "summary.json").read_text())
    assert student["attack"] == mode and "12 triggered test images" in result.stderr
    assert student["teacher"]["attack_success_rate"] == summary["attack_success_rate"]
    assert not (student_dir / "cross_indices.json").exists()  # a student poisons nothing
