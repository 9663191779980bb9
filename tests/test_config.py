"""Config errors: one line naming the key path, exit code 2, nothing written. Overrides and round trips."""

from pathlib import Path

import pytest
import yaml

import train_teacher
from config.cli import config_parser
from config.cli import run_script as run_cli
from config.loading import load_checked_config, load_config
from config.overrides import apply_override
from config.schema import TeacherConfig
from tests.conftest import REPO, run_script, teacher_config_dict, write_config
from utils.errors import UserError


def cli(tmp_path, capsys, config: dict, *overrides: str) -> tuple[int, str]:
    path = write_config(tmp_path / "config.yaml", config)
    argv = ["-c", str(path)] + (["--set", *overrides] if overrides else [])
    code = run_cli(TeacherConfig, train_teacher.main, config_parser("test"), argv)
    return code, capsys.readouterr().err


CASES = [
    # (override, expected fragment of the one-line message)
    ("backdoor.poisoning_rate=1.5", "backdoor.poisoning_rate: Input should be less than or equal to 1"),
    ("backdoor.BlendedBackdoor={blend_ratio: -0.1}", "backdoor.BlendedBackdoor.blend_ratio"),
    ("backdoor.target_idx=3", "backdoor.target_idx: 3 is outside the 3 classes"),
    ("backdoor.PatchBackdoor.trigger_size=17", "backdoor.PatchBackdoor.trigger_size: 17 is larger than the 16-pixel"),
    ("backdoor.WaNet={}", "backdoor.WaNet: unknown key; allowed here: target_idx"),
    ("backdoor.BppBackdoor={levels: 1}", "backdoor.BppBackdoor.levels: Input should be greater than or equal to 2"),
    ("backdoor.WaNetBackdoor={kernel_size: 1}", "backdoor.WaNetBackdoor.kernel_size: Input should be greater than or"),
    ("backdoor.WaNetBackdoor={strength: -0.5}", "backdoor.WaNetBackdoor.strength: Input should be greater than or"),
    ("backdoor.SIGBackdoor={delta: 0}", "backdoor.SIGBackdoor.delta: Input should be greater than 0"),
    (f"backdoor.PatchBackdoor.trigger_type={REPO / 'pyproject.toml'}", "trigger_type: cannot read trigger image"),
    ("backdoor={WaNetBackdoor: {image_size: 8}}", "backdoor.WaNetBackdoor.image_size: 8 differs from the 16-pixel"),
    ("backdoor.target_type=all_to_some", "backdoor.target_type: Input should be 'all_to_one' or 'all_to_all'"),
    (
        "backdoor={clean_label: true, poison_target_class: true, PatchBackdoor: {}}",
        "backdoor.clean_label: clean-label poisoning draws only target-class images, so poison_target_class: true",
    ),
    (
        "backdoor={clean_label: true, target_type: all_to_all, PatchBackdoor: {}}",
        "backdoor.clean_label: clean-label poisoning keeps every label, so it cannot send class y to (y + 1) mod n",
    ),
    ("training.batch_size=many", "training.batch_size: Input should be a valid integer"),
    ("training.epochs=3", "training.epochs: unknown key; allowed here: num_epochs"),
    ("model.architecture=resnet19", "model.architecture: unknown architecture 'resnet19'"),
    ("optimizer={Adamm: {lr: 0.1}}", "optimizer: unknown optimizer 'Adamm' (did you mean Adam"),
    ("optimizer={SGD: {learning_rate: 0.1}}", "unexpected keyword argument 'learning_rate'"),
    ("lr_scheduler={StepLRR: {step_size: 1}}", "lr_scheduler: unknown lr_scheduler 'StepLRR'"),
    ("transformations={RandomFlip: {}}", "transformations: unknown transformation"),
    ("transformations={RandomEqualize: {}}", "transformations: they must accept a 3×16×16 float tensor"),
    ("dataset.root_test=/no/such/folder", "dataset.root_test: folder not found: /no/such/folder"),
    ("model.num_classes=5", "model.num_classes: 5, but dataset.root_train has 3 class folders"),
    ("wandb.args={projet: x}", "wandb.args: unknown wandb.init argument(s) projet"),
    ("training.device=gpu", "training.device: 'gpu' is not a device"),
]


@pytest.mark.parametrize(("override", "fragment"), CASES, ids=[c[0].split("=")[0] for c in CASES])
def test_bad_values_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, image_data, override, fragment):
    save_path = tmp_path / "runs"
    code, err = cli(tmp_path, capsys, teacher_config_dict(image_data, save_path), override)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert fragment in lines[0]
    assert "Traceback" not in err
    assert not save_path.exists()


def test_mismatched_class_folders(tmp_path, capsys, image_data):
    (image_data["test"] / "dog").rename(image_data["test"] / "wolf")
    code, err = cli(tmp_path, capsys, teacher_config_dict(image_data, tmp_path / "runs"))
    assert code == 2 and "only in root_test: ['wolf']" in err


def test_missing_and_malformed_files(tmp_path, capsys):
    argv = ["-c", str(tmp_path / "missing.yaml")]
    assert run_cli(TeacherConfig, train_teacher.main, config_parser("t"), argv) == 2
    assert "cannot read config file" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    assert run_cli(TeacherConfig, train_teacher.main, config_parser("t"), ["-c", str(tmp_path / "bad.yaml")]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_missing_required_key(tmp_path, capsys, image_data):
    config = teacher_config_dict(image_data, tmp_path / "runs")
    del config["dataset"]["root_train"]
    code, err = cli(tmp_path, capsys, config)
    assert code == 2 and "dataset.root_train: required key is missing" in err


def test_script_exit_code_and_stderr_end_to_end(tmp_path, image_data):
    """The real command line: argparse, config error, exit 2, no traceback."""
    config = write_config(tmp_path / "c.yaml", teacher_config_dict(image_data, tmp_path / "runs"))
    result = run_script(tmp_path, "train_teacher.py", "-c", str(config), "--set", "backdoor.poisoning_rate=2")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {config}: backdoor.poisoning_rate: Input should be less than or equal to 1 (got 2)"
    ]
    assert not (tmp_path / "runs").exists()


def test_overrides_are_yaml_parsed_and_nested():
    data = {"training": {"num_epochs": 100}}
    for assignment in ["training.num_epochs=5", "seed=7", "lr_scheduler.MultiStepLR.milestones=[3, 5]", "a.b=x y"]:
        apply_override(data, assignment)
    assert data == {
        "training": {"num_epochs": 5},
        "seed": 7,
        "lr_scheduler": {"MultiStepLR": {"milestones": [3, 5]}},
        "a": {"b": "x y"},
    }
    with pytest.raises(UserError, match=r"expected key\.path=value"):
        apply_override(data, "training.num_epochs")
    with pytest.raises(UserError, match="holds a value"):
        apply_override(data, "seed.x=1")


def test_resolved_config_round_trips(tmp_path, image_data):
    path = write_config(tmp_path / "c.yaml", teacher_config_dict(image_data, tmp_path / "runs", model={}))
    config = load_checked_config(
        TeacherConfig, path, ["backdoor.BlendedBackdoor={blend_ratio: 0.2}", "backdoor.PatchBackdoor=null"]
    )
    resolved = config.to_dict()
    assert resolved["model"]["num_classes"] == 3  # filled in from the class folders
    assert resolved["backdoor"]["BlendedBackdoor"] == {"image_size": 16, "trigger_type": "random", "blend_ratio": 0.2}
    assert "PatchBackdoor" not in resolved["backdoor"]
    again = load_config(TeacherConfig, write_config(tmp_path / "resolved.yaml", resolved))
    assert again.to_dict() == resolved


def test_reference_configs_validate_with_paths_changed(tmp_path, image_data):
    """The reference's own teacher configs (keys, rtpt block, Blended image_size) load unchanged but for paths."""
    reference = yaml.safe_load((Path(__file__).parent / "reference_configs" / "training_blended.yaml").read_text())
    reference["dataset"].update(root_train=str(image_data["train"]), root_test=str(image_data["test"]), image_size=224)
    config = TeacherConfig.model_validate(reference)
    assert config.backdoor.attack_name == "BlendedBackdoor"
    assert config.model.architecture == "resnet101" and config.rtpt is not None


def test_student_backdoor_block_poisons_nothing(tmp_path, image_data):
    from config.schema import StudentConfig

    config = teacher_config_dict(image_data, tmp_path / "runs")
    config["distillation"] = {"teacher_model": str(tmp_path)}
    with pytest.raises(UserError, match=r"backdoor\.poisoning_rate: 0\.5, but a student's backdoor block"):
        load_config(StudentConfig, write_config(tmp_path / "s.yaml", config))


def test_blended_trigger_file_must_be_an_image(tmp_path, capsys, image_data):
    (tmp_path / "notes.png").write_text("not an image")
    config = teacher_config_dict(image_data, tmp_path / "runs")
    config["backdoor"] = {"target_idx": 0, "BlendedBackdoor": {"trigger_type": str(tmp_path / "notes.png")}}
    code, err = cli(tmp_path, capsys, config)
    assert code == 2 and "backdoor.BlendedBackdoor.trigger_type: cannot read trigger image" in err


def test_atomic_files_are_readable_by_others(tmp_path):
    import os
    import stat

    from utils.atomic_io import atomic_write_text

    atomic_write_text(tmp_path / "out.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o666 & ~mask
