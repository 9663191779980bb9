"""Config errors: one line naming the key path, exit code 2, nothing written. Overrides and round trips."""

from pathlib import Path

import pytest
import yaml

from cli.runner import run_training_script
from config.loading import load_checked_config, load_config
from config.overrides import apply_override
from config.schema import TeacherConfig, VariationConfig
from tests.conftest import REPO, run_script, teacher_config_dict, write_config
from training.roles import TeacherRole
from utils.errors import UserError
from variations.backends import BACKENDS


def cli(tmp_path, capsys, config: dict, *overrides: str) -> tuple[int, str]:
    path = write_config(tmp_path / "config.yaml", config)
    argv = ["-c", str(path)] + (["--set", *overrides] if overrides else [])
    code = run_training_script(TeacherConfig, TeacherRole(), "teacher", argv)
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
    ("transformations={RandomEqualize: {p: 1.0}}", "transformations: they must accept a 3×16×16 float tensor"),
    ("dataset.root_test=/no/such/folder", "dataset.root_test: folder not found: /no/such/folder"),
    ("model.num_classes=5", "model.num_classes: 5, but dataset.root_train has 3 class folders"),
    ("wandb.args={projet: x}", "wandb.args: unknown wandb.init argument(s) projet"),
    ("training.device=gpu", "training.device: 'gpu' is not a device"),
    # ranges that libraries leave open (NaN passes their comparisons) or that fail after a wasted epoch
    ("optimizer={SGD: {lr: .nan}}", "optimizer: SGD.lr: nan is not a finite number"),  # SGD checks lr < 0 only
    ("optimizer.Adam.lr=.inf", "optimizer: Adam.lr: inf is not a finite number"),
    ("optimizer.Adam.lr=1.0e+30", "optimizer: lr 1e+30 is outside (0, 10.0]"),
    ("seed=-1", "seed: Input should be greater than or equal to 0"),
    ("seed=4294967296", "seed: Input should be less than 4294967296"),
    ("lr_scheduler={StepLR: {step_size: 0}}", "lr_scheduler: StepLR fails after epoch 1: ZeroDivisionError"),
    ("lr_scheduler={ExponentialLR: {gamma: 1.0e+5}}", "lr_scheduler: lr 100.0 (set by ExponentialLR after epoch 1)"),
    ("transformations={RandomErasing: {p: .nan}}", "transformations: RandomErasing.p: nan is not a finite number"),
    ("model.normalization={mean: [0, 0, 0], std: [.nan, 1, 1]}", "model.normalization.std.0: Input should be a finite"),
    ("model.normalization={mean: [0, 0, 0], std: [0, 1, 1]}", "model.normalization.std: std values must be > 0"),
    ("training.aux_loss_weight=.inf", "training.aux_loss_weight: Input should be a finite number"),
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


def test_huge_image_size_is_refused_before_anything_is_allocated(tmp_path, image_data):
    config = teacher_config_dict(image_data, tmp_path / "runs", dataset={"image_size": 100000})
    with pytest.raises(UserError, match=r"dataset\.image_size: Input should be less than or equal to 4096"):
        load_config(TeacherConfig, write_config(tmp_path / "c.yaml", config))


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_huge_variation_sizes_are_refused_for_every_backend(tmp_path, backend):
    config = {
        "dataset": {"root": str(tmp_path)},
        "output_folder": str(tmp_path / "out"),
        "diffusion": {"backend": backend, "height": 8192, "width": 8192},
    }
    with pytest.raises(UserError, match=r"diffusion\.height: Input should be less than or equal to 4096"):
        load_config(VariationConfig, write_config(tmp_path / "v.yaml", config))


def test_a_schedule_shorter_than_the_run_is_refused_up_front(tmp_path, image_data):
    """OneCycleLR counts its steps: with 2 of them in a 3-epoch run, the old code failed after epoch 3."""
    config = teacher_config_dict(image_data, tmp_path / "runs", training={"num_epochs": 3})
    config["lr_scheduler"] = {"OneCycleLR": {"max_lr": 0.01, "total_steps": 2}}
    with pytest.raises(UserError, match=r"lr_scheduler: OneCycleLR fails after epoch 3: ValueError: Tried to step"):
        load_config(TeacherConfig, write_config(tmp_path / "c.yaml", config))
    config["lr_scheduler"] = {"CosineAnnealingLR": {"T_max": 3}}  # ends at lr 0 after the last epoch: fine
    load_config(TeacherConfig, write_config(tmp_path / "c.yaml", config))


def test_scientific_notation_is_a_float_in_files_and_overrides(tmp_path, image_data):
    """YAML 1.1 (PyYAML) reads 1e-4 as a string; configs read it as YAML 1.2 does, as people write it."""
    config = teacher_config_dict(image_data, tmp_path / "runs")
    text = yaml.safe_dump(config) + "optimizer:\n  SGD: {lr: 1e-4, momentum: 0.9, weight_decay: 5E-4}\n"
    path = tmp_path / "c.yaml"
    path.write_text(text)
    loaded = load_config(TeacherConfig, path).optimizer["SGD"]
    assert loaded == {"lr": 1e-4, "momentum": 0.9, "weight_decay": 5e-4} and isinstance(loaded["lr"], float)
    overridden = load_config(TeacherConfig, path, ["optimizer.SGD.lr=2.5e-3", "training.num_epochs=3"])
    assert overridden.optimizer["SGD"]["lr"] == 2.5e-3
    assert overridden.training.num_epochs == 3 and isinstance(overridden.training.num_epochs, int)


def test_override_values_follow_the_same_number_rules():
    data = {"training": {}}
    apply_override(data, "training.num_epochs=1e2")
    apply_override(data, "wandb.args.name=run-1e-4")
    assert data["training"]["num_epochs"] == 100.0 and data["wandb"]["args"]["name"] == "run-1e-4"


ALIAS_BOMB = """
wandb:
  enable_logging: false
  args:
    tags: [&a [x, x, x, x, x, x, x, x, x, x], &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a],
           &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b], &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c],
           &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d], &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e],
           &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f], &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g],
           &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]]
"""


def test_yaml_alias_bombs_are_refused_anywhere_in_the_file(tmp_path, image_data):
    """Nine levels of ten: 10**9 values once expanded (what saving the resolved config would write)."""
    base = write_config(tmp_path / "base.yaml", teacher_config_dict(image_data, tmp_path / "runs"))
    path = tmp_path / "bomb.yaml"
    path.write_text(f"base: {base.name}\n{ALIAS_BOMB}")
    with pytest.raises(UserError, match=r"bomb\.yaml: its aliases expand to \d{10} values \(at most 100000\)"):
        load_config(TeacherConfig, path)
    (tmp_path / "loop.yaml").write_text(f"base: {base.name}\nwandb: {{args: {{tags: &t [x, *t]}}}}\n")
    with pytest.raises(UserError, match="an alias refers to a list or mapping that contains it"):
        load_config(TeacherConfig, tmp_path / "loop.yaml")
    with pytest.raises(UserError, match=r"--set .*its aliases expand"):
        load_config(TeacherConfig, base, ["wandb.args.tags=" + ALIAS_BOMB.split("tags: ")[1].replace("\n", " ")])
    shared = "wandb:\n  args:\n    tags: &t [a, b]\n    notes: *t\n"  # ordinary aliases stay welcome
    (tmp_path / "ok.yaml").write_text(f"base: {base.name}\n{shared}")
    assert load_config(TeacherConfig, tmp_path / "ok.yaml").wandb.args["notes"] == ["a", "b"]


def test_mismatched_class_folders(tmp_path, capsys, image_data):
    (image_data["test"] / "dog").rename(image_data["test"] / "wolf")
    code, err = cli(tmp_path, capsys, teacher_config_dict(image_data, tmp_path / "runs"))
    assert code == 2 and "only in root_test: ['wolf']" in err


def test_missing_and_malformed_files(tmp_path, capsys):
    argv = ["-c", str(tmp_path / "missing.yaml")]
    assert run_training_script(TeacherConfig, TeacherRole(), "teacher", argv) == 2
    assert "cannot read config file" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    assert run_training_script(TeacherConfig, TeacherRole(), "teacher", ["-c", str(tmp_path / "bad.yaml")]) == 2
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
    assert result.stderr.strip().splitlines() == [  # the override is at fault, not the file (issue 20)
        "error: --set 'backdoor.poisoning_rate=2': backdoor.poisoning_rate: Input should be less than or equal to 1 "
        "(got 2)"
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


def test_trigger_files_are_checked_on_disk_after_validation(tmp_path, image_data):
    """The schema needs no trigger image; the data checks of every config kind name the key of a missing one."""
    from config.data_checks import check_data

    logo = str(tmp_path / "logo.png")
    config = teacher_config_dict(image_data, tmp_path / "runs")
    config["backdoor"]["PatchBackdoor"]["trigger_type"] = logo
    teacher = TeacherConfig.model_validate(config)  # no file yet
    with pytest.raises(UserError, match=r"^backdoor\.PatchBackdoor\.trigger_type: must be one of .*logo\.png' is not"):
        check_data(teacher)
    variations = VariationConfig.model_validate(
        {
            "dataset": {"root": str(image_data["train"]), "image_size": 16},
            "output_folder": str(tmp_path / "out"),
            "backdoor": {"BlendedBackdoor": {"trigger_type": logo}},
        }
    )
    with pytest.raises(UserError, match=r"^backdoor\.BlendedBackdoor\.trigger_type: must be 'random' or the path"):
        check_data(variations)
    config["backdoor"]["PatchBackdoor"]["trigger_type"] = " "  # what the string alone shows stays in the schema
    with pytest.raises(ValueError, match=r"trigger_type\n.*must be one of checkerboard"):
        TeacherConfig.model_validate(config)


def test_atomic_files_are_readable_by_others(tmp_path):
    import os
    import stat

    from utils.atomic_io import atomic_write_text

    atomic_write_text(tmp_path / "out.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o666 & ~mask


def test_schema_validates_without_folders_and_disk_checks_come_after(tmp_path):
    """Validation needs no data; the checks against the disk are a separate step that names the key."""
    from config.data_checks import check_data

    config = {
        "dataset": {"root_train": str(tmp_path / "nowhere/train"), "root_test": str(tmp_path / "nowhere/test")},
        "backdoor": {"target_idx": 7, "PatchBackdoor": {}},
    }
    teacher = TeacherConfig.model_validate(config)  # no folder exists, target_idx unchecked yet
    assert teacher.model.num_classes is None
    with pytest.raises(UserError, match=r"dataset\.root_train: folder not found: .*nowhere/train"):
        check_data(teacher)


def test_every_validation_error_is_its_own_line(tmp_path, image_data):
    """Three mistakes, three lines (each blaming its own source), exit 2, nothing written (issue 23)."""
    data = teacher_config_dict(image_data, tmp_path / "runs", training={"num_epochs": 0})
    data["model"]["colour"] = "red"
    config = write_config(tmp_path / "c.yaml", data)
    result = run_script(tmp_path, "train_teacher.py", "-c", str(config), "--set", "backdoor.poisoning_rate=2")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines), lines
    assert any(line.startswith(f"error: {config}: model.colour: unknown key") for line in lines)
    assert any(f"error: {config}: training.num_epochs: Input should be greater than 0" in line for line in lines)
    assert any(line.startswith("error: --set 'backdoor.poisoning_rate=2': backdoor.poisoning_rate:") for line in lines)
    assert not (tmp_path / "runs").exists()
