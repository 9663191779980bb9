"""Knowledge distillation: the loss by hand, a frozen teacher, teacher references, the student CLI."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import DataLoader, TensorDataset

from models.checkpoint import save_checkpoint
from models.classifier_factory import ClassifierRecord, build_classifier, classifier_metadata
from models.teacher_reference import TeacherSource, load_teacher, resolve_teacher
from tests import wandb_records
from tests.conftest import run_script, teacher_config_dict, write_config
from training.compute import Compute
from training.loop import Trainable, train_one_epoch
from training.objectives import DistillationObjective, distillation_loss
from training.optim import build_optimizer
from training.sections import DistillationSection
from utils.errors import UserError
from utils.tracking import record_teacher_input

STUDENT = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
TEACHER = np.array([[1.0, 0.0, -1.0], [-2.0, 4.0, 0.5]])
LABELS = np.array([0, 2])


def log_softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def by_hand(alpha, temperature, scaled_ce=False):
    log_p_student = log_softmax(STUDENT / temperature)
    p_teacher = np.exp(log_softmax(TEACHER / temperature))
    kl = (p_teacher * (np.log(p_teacher) - log_p_student)).sum(axis=1).mean() * temperature**2
    ce_input = log_p_student if scaled_ce else STUDENT
    ce = -log_softmax(ce_input)[np.arange(2), LABELS].mean()
    return alpha * kl + (1 - alpha) * ce


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_kd_loss_matches_hand_computation(alpha, temperature):
    loss = distillation_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS), alpha, temperature)
    assert loss.item() == pytest.approx(by_hand(alpha, temperature), rel=1e-6)


def test_reference_switch_puts_scaled_log_probs_into_the_ce():
    args = (torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS), 0.5, 4.0)
    assert distillation_loss(*args, ce_on_scaled_logits=True).item() == pytest.approx(by_hand(0.5, 4.0, True), rel=1e-6)
    assert by_hand(0.5, 4.0, True) != pytest.approx(by_hand(0.5, 4.0))


def tiny_pair():
    torch.manual_seed(0)
    return build_classifier("test_resnet", 3), build_classifier("test_resnet", 3)


def trainable(model) -> Trainable:
    cpu = Compute(torch.device("cpu"))
    return Trainable(model, build_optimizer({"SGD": {"lr": 0.1}}, model.parameters()), None, cpu, cpu.grad_scaler())


class InputSpy(torch.nn.Module):
    """Records every batch a model is called with."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, images):
        self.seen.append(images.detach().clone())
        return self.model(images)


def test_teacher_sees_exactly_the_students_augmented_batch(image_data):
    """Random augmentations run once per batch; the teacher scores the very pixels the student trains on."""
    from datasets.image_folder import scan_image_folder
    from datasets.poisoned_image_folder import PoisonedImageFolder
    from datasets.transforms import build_transform

    index = scan_image_folder(image_data["train"])
    augment = build_transform({"RandomHorizontalFlip": {"p": 0.5}, "RandomErasing": {"p": 0.5}})
    dataset = PoisonedImageFolder(index.samples, 16, transform=augment)
    student, teacher = (InputSpy(model) for model in tiny_pair())
    objective = DistillationObjective(teacher, DistillationSection(teacher_model="t"))
    torch.manual_seed(3)
    loader = DataLoader(dataset, batch_size=4, shuffle=True)
    train_one_epoch(trainable(student), loader, objective, epoch=1, show_progress=False)
    assert len(student.seen) == len(teacher.seen) == len(loader)
    for student_batch, teacher_batch in zip(student.seen, teacher.seen, strict=True):
        assert torch.equal(student_batch, teacher_batch)
    plain = torch.stack([dataset.load(i).image for i in range(len(dataset))])  # not augmented, for contrast
    assert not any(torch.equal(batch, plain[: len(batch)]) for batch in student.seen)


def test_gradient_reaches_only_the_student_and_teacher_stays_frozen():
    student, teacher = tiny_pair()
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}  # includes BN running stats
    objective = DistillationObjective(teacher, DistillationSection(alpha=0.5, temperature=4.0, teacher_model="t"))
    images = torch.rand(16, 3, 16, 16)
    labels = torch.randint(0, 3, (16,))
    loader = DataLoader(TensorDataset(images, labels, labels), batch_size=4)
    student_before = {k: v.clone() for k, v in student.state_dict().items()}
    train_one_epoch(trainable(student), loader, objective, epoch=1, show_progress=False)
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(teacher_before[k], v) for k, v in teacher.state_dict().items())
    assert not teacher.training
    assert any(not torch.equal(student_before[k], v) for k, v in student.state_dict().items())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def save_tiny_teacher(folder: Path, classes=("cat", "dog", "frog")) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(1)
    model = build_classifier("test_resnet", len(classes)).eval()
    record = ClassifierRecord(
        architecture="test_resnet",
        num_classes=len(classes),
        class_names=list(classes),
        image_size=16,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
    )
    metadata = classifier_metadata(record)
    folder.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(folder / "model.safetensors", model, metadata), model


def same_outputs(a, b):
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))


def test_teacher_from_run_directory_and_checkpoint_file(tmp_path):
    path, model = save_tiny_teacher(tmp_path / "run")
    for reference in (str(tmp_path / "run"), str(path)):
        source = resolve_teacher(reference)
        assert source.path == path and source.artifact is None
        teacher, metadata = load_teacher(source)
        assert metadata["class_names"] == ["cat", "dog", "frog"]
        assert not any(p.requires_grad for p in teacher.parameters())
        same_outputs(teacher, model)
    with pytest.raises(UserError, match=r"has no model\.safetensors"):
        resolve_teacher(str(tmp_path))


class FakeArtifact:
    """Stands in for wandb's public Artifact: download() copies a real file into ``root``."""

    def __init__(self, name, checkpoint, kind="model"):
        self.qualified_name, self.type, self.checkpoint = name, kind, checkpoint

    def download(self, root):
        Path(root).mkdir(parents=True, exist_ok=True)
        shutil.copy(self.checkpoint, Path(root) / self.checkpoint.name)
        return root


class FakeFile:
    def __init__(self, source):
        self.source = source

    def download(self, root, replace=False, exist_ok=False):
        target = Path(root) / "weights" / self.source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.source, target)
        return open(target)  # wandb returns an open file handle; its .name is the path


class FakeRun:
    def __init__(self, config, artifacts=(), files=None):
        self.entity, self.project, self.id = "team", "backdoor_models", "abc123"
        self.config, self._artifacts, self._files = config, list(artifacts), files or {}

    def logged_artifacts(self):
        return self._artifacts

    def file(self, name):
        return FakeFile(self._files[name])


class FakeApi:
    """The boundary of the W&B public API the resolver uses: run(), artifact()."""

    def __init__(self, runs=None, artifacts=None):
        self.runs, self.artifacts, self.calls = runs or {}, artifacts or {}, []

    def run(self, path):
        self.calls.append(("run", path))
        if path not in self.runs:
            raise ValueError(f"Could not find run {path}")
        return self.runs[path]

    def artifact(self, name, type=None):
        self.calls.append(("artifact", name, type))
        return self.artifacts[name]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKDOOR_DEFENSE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_wandb_run_path_uses_the_recorded_artifact(tmp_path, cache):
    path, model = save_tiny_teacher(tmp_path / "src")
    artifact = FakeArtifact("team/backdoor_models/model-abc123:v0", path)
    api = FakeApi(
        runs={"team/backdoor_models/abc123": FakeRun({"checkpoint_artifact": "model-abc123:latest"})},
        artifacts={"team/backdoor_models/model-abc123:latest": artifact},
    )
    source = resolve_teacher("team/backdoor_models/abc123", api=api)
    assert source.path.is_relative_to(cache) and source.artifact == "team/backdoor_models/model-abc123:v0"
    assert api.calls == [
        ("run", "team/backdoor_models/abc123"),
        ("artifact", "team/backdoor_models/model-abc123:latest", "model"),
    ]
    same_outputs(load_teacher(source)[0], model)


def test_wandb_run_path_falls_back_to_logged_model_artifacts(tmp_path, cache):
    path, _ = save_tiny_teacher(tmp_path / "src")
    logged = [FakeArtifact("team/p/dataset:v0", path, kind="dataset"), FakeArtifact("team/p/model-x:v3", path)]
    api = FakeApi(runs={"team/p/x": FakeRun({}, artifacts=logged)})
    assert resolve_teacher("team/p/x", api=api).artifact == "team/p/model-x:v3"


def test_wandb_artifact_reference(tmp_path, cache):
    path, _ = save_tiny_teacher(tmp_path / "src")
    api = FakeApi(artifacts={"team/p/model-x:best": FakeArtifact("team/p/model-x:v7", path)})
    source = resolve_teacher("team/p/model-x:best", api=api)
    assert source.path.name == "model.safetensors" and source.path.is_file()


def test_reference_implementation_run_is_loaded_weights_only(tmp_path, cache):
    """A run made by the reference code: config Architecture/num_classes/model_path, a torch.save'd dict."""
    torch.manual_seed(2)
    backbone = build_classifier("resnet18", 3, mean=(0,) * 3, std=(1,) * 3).backbone.eval()
    legacy = tmp_path / "Classifier_0.9000_no_val.pth"
    torch.save(
        {"epoch": 1, "model_state_dict": {f"model._orig_mod.{k}": v for k, v in backbone.state_dict().items()}}, legacy
    )
    config = {"Architecture": "resnet18", "num_classes": 3, "model_path": "results/Classifier_0.9000_no_val.pth"}
    api = FakeApi(runs={"team/p/old": FakeRun(config, files={"results/Classifier_0.9000_no_val.pth": legacy})})
    teacher, metadata = load_teacher(resolve_teacher("team/p/old", api=api))
    assert metadata["class_names"] is None and metadata["num_classes"] == 3
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(teacher(x), backbone(x))


def test_unresolvable_references_say_what_is_accepted(tmp_path, cache):
    with pytest.raises(UserError, match="accepted: a teacher run directory, a checkpoint file"):
        resolve_teacher("team/p/missing", api=FakeApi())
    with pytest.raises(UserError, match="not a W&B reference"):
        resolve_teacher("no_such_run_dir")
    with pytest.raises(UserError, match="W&B says: Could not find run"):
        resolve_teacher("team/p/missing", api=FakeApi())


class RecordingRun:
    """The slice of an online wandb Run that lineage uses."""

    def __init__(self):
        self.id, self.offline, self.used = "r1", False, []
        self.config = type("Config", (), {"update": lambda _, d: self.used.append(("config", d))})()

    def use_artifact(self, artifact):
        self.used.append(("use", artifact))


def test_teacher_lineage_online(tmp_path):
    path, _ = save_tiny_teacher(tmp_path / "run")
    run = RecordingRun()
    record_teacher_input(run, resolve_teacher(str(tmp_path / "run")))
    kind, artifact = run.used[-1]
    assert kind == "use" and artifact.type == "model" and artifact.name == "teacher-r1"
    run = RecordingRun()
    record_teacher_input(run, TeacherSource(path, "team/p/x", artifact="team/p/model-x:v1"))
    assert run.used[-1] == ("use", "team/p/model-x:v1")


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    """A real tiny teacher run (BadNets on the fixture data)."""
    from tests.conftest import make_image_folder

    tmp = tmp_path_factory.mktemp("teacher")
    data = {
        "train": make_image_folder(tmp / "data" / "train", per_class=6, seed=1),
        "test": make_image_folder(tmp / "data" / "test", per_class=4, seed=2),
    }
    config = write_config(tmp / "teacher.yaml", teacher_config_dict(data, tmp / "runs", training={"num_epochs": 2}))
    result = run_script(tmp, "train_teacher.py", "-c", str(config))
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp / "runs").iterdir()
    return data, run_dir


def student_config_dict(data, variations: Path, save_path: Path, teacher: str) -> dict:
    config = teacher_config_dict(data, save_path)
    config["dataset"]["root_train"] = str(variations)
    config["backdoor"]["poisoning_rate"] = 0.0
    config["distillation"] = {"alpha": 0.5, "temperature": 4.0, "teacher_model": teacher}
    config["training"]["num_epochs"] = 2
    return config


def test_student_cli_end_to_end_with_wandb_offline(tmp_path, teacher_run):
    data, teacher_dir = teacher_run
    variations = tmp_path / "variations"
    shutil.copytree(data["train"], variations)  # stand-in for generated variations
    config = student_config_dict(data, variations, tmp_path / "students", str(teacher_dir))
    config["wandb"] = {"enable_logging": True, "args": {"project": "tests", "name": "tiny_student"}}
    result = run_script(tmp_path, "train_student.py", "-c", str(write_config(tmp_path / "student.yaml", config)))
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "students").iterdir()
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "model.safetensors"):
        assert (run_dir / name).is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    teacher_summary = json.loads((teacher_dir / "summary.json").read_text())
    for section in ("student", "teacher"):
        for key in ("clean_accuracy", "attack_success_rate", "robust_accuracy"):
            assert 0 <= summary[section][key] <= 1
    # the teacher, evaluated by the student run on the same test sets, scores as in its own run
    assert summary["teacher"]["clean_accuracy"] == pytest.approx(teacher_summary["clean_accuracy"])
    assert summary["teacher"]["attack_success_rate"] == pytest.approx(teacher_summary["attack_success_rate"])
    t, s = summary["teacher"], summary["student"]
    expected_der = (
        max(0, t["attack_success_rate"] - s["attack_success_rate"])
        - max(0, t["clean_accuracy"] - s["clean_accuracy"])
        + 1
    ) / 2
    assert summary["der"] == pytest.approx(expected_der)
    assert "defence effectiveness (DER)" in result.stderr

    records = wandb_records.read_records(wandb_records.offline_run_file(run_dir))
    wb_summary = wandb_records.summary(records)
    assert wb_summary["der"] == pytest.approx(summary["der"])
    assert wb_summary["student/clean_accuracy"] == pytest.approx(s["clean_accuracy"])
    assert any("results/teacher_vs_student/_type" in row for row in wandb_records.history(records))
    wb_config = wandb_records.config(records)
    assert wb_config["distillation"]["teacher_model"] == str(teacher_dir) and "teacher_artifact" in wb_config
    # a folder that generate_variations.py did not write: the upper-bound student; the rate is the teacher's
    teacher_rate = yaml.safe_load((teacher_dir / "config.yaml").read_text())["backdoor"]["poisoning_rate"]
    assert (wb_config["role"], wb_config["variation_backend"], wb_config["poisoning_rate"]) == (
        "clean_student",
        None,
        teacher_rate,
    )

    # a student can itself serve as a teacher
    again = student_config_dict(data, variations, tmp_path / "grandchildren", str(run_dir))
    result = run_script(
        tmp_path,
        "train_student.py",
        "-c",
        str(write_config(tmp_path / "again.yaml", again)),
        "--set",
        "training.num_epochs=1",
    )
    assert result.returncode == 0, result.stderr


def test_student_refuses_mismatched_variation_classes(tmp_path, teacher_run):
    data, teacher_dir = teacher_run
    variations = tmp_path / "variations"
    shutil.copytree(data["train"], variations)
    shutil.rmtree(variations / "frog")
    config = student_config_dict(data, variations, tmp_path / "students", str(teacher_dir))
    result = run_script(tmp_path, "train_student.py", "-c", str(write_config(tmp_path / "s.yaml", config)))
    assert result.returncode == 2
    assert "same class folders" in result.stderr and "frog" in result.stderr
    assert not (tmp_path / "students").exists()
