"""Issue 20, items 7, 8 and 10: inputs that ended in a traceback, in a misleading line, or in files that are
not what they claim (bare NaN in JSON, header bytes that change between identical runs, a hidden run
directory). Each must give one line naming the culprit (exit code 2, nothing written) or the right file."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path, PurePosixPath

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from cli.runner import run_training_script
from config.loading import load_config
from config.schema import StudentConfig, TeacherConfig, VariationConfig
from models.checkpoint import METADATA_KEY
from models.teacher_reference import load_teacher, resolve_teacher
from tests.conftest import REPO, make_image_folder, script_env, teacher_config_dict, write_config
from tests.test_hostile_inputs import classical_config, generate, one_error_line, png_header, teacher
from training.roles import StudentRole, TeacherRole
from training.run_directory import create_run_dir
from utils.atomic_io import atomic_write_json
from utils.errors import UserError
from variations.completeness import variations_complete
from variations.output_folder import SIZES_KEY


def strict_json(path: Path):
    """The file parsed as JSON proper: NaN and Infinity are not JSON."""

    def refuse(constant):
        raise ValueError(f"{path}: {constant} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def single_class_data(tmp_path) -> dict[str, Path]:
    return {
        "train": make_image_folder(tmp_path / "data" / "train", classes=("cat",), per_class=6, seed=1),
        "test": make_image_folder(tmp_path / "data" / "test", classes=("cat",), per_class=4, seed=2),
    }


# 7. Fewer than two classes; NaN in JSON -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backdoor",
    [{}, {"clean_label": True}, {"target_type": "all_to_all"}],
    ids=["dirty_label", "clean_label", "all_to_all"],
)
def test_a_single_class_is_refused_before_anything_is_written(tmp_path, capsys, backdoor):
    config = teacher_config_dict(single_class_data(tmp_path), tmp_path / "runs", backdoor=backdoor)
    code, err = teacher(tmp_path, capsys, config)
    line = one_error_line(err)
    assert code == 2 and "dataset.root_train" in line and "1 class folder" in line and "at least 2" in line
    assert not (tmp_path / "runs").exists()


def test_a_single_class_is_refused_by_the_generator(tmp_path, capsys):
    source = make_image_folder(tmp_path / "train", classes=("cat",), per_class=4)
    code, err = generate(tmp_path, capsys, classical_config(source, tmp_path / "out"))
    line = one_error_line(err)
    assert code == 2 and "dataset.root" in line and "at least 2" in line
    assert not (tmp_path / "out").exists()


def test_json_files_hold_null_for_non_finite_numbers_and_the_log_names_them(tmp_path, caplog):
    path = tmp_path / "summary.json"
    with caplog.at_level(logging.WARNING):
        atomic_write_json(path, {"clean_accuracy": 1.0, "attack_success_rate": math.nan, "x": {"y": [math.inf]}})
    assert strict_json(path) == {"clean_accuracy": 1.0, "attack_success_rate": None, "x": {"y": [None]}}
    assert "attack_success_rate" in caplog.text and "x.y.0" in caplog.text and str(path) in caplog.text


# 8. A decompression-bomb trigger image --------------------------------------------------------------------------


def test_a_decompression_bomb_as_trigger_image_is_one_line_in_every_script(tmp_path, capsys, image_data):
    bomb = tmp_path / "huge.png"
    bomb.write_bytes(png_header(20000, 20000))
    attack = {"PatchBackdoor": {"trigger_type": str(bomb), "trigger_size": 3}}
    code, err = teacher(tmp_path, capsys, teacher_config_dict(image_data, tmp_path / "runs", backdoor=attack))
    line = one_error_line(err)
    assert code == 2 and "trigger_type" in line and "huge.png" in line and "too large to decode safely" in line
    assert not (tmp_path / "runs").exists()

    config = teacher_config_dict(image_data, tmp_path / "students", backdoor={**attack, "poisoning_rate": 0.0})
    config["distillation"] = {"teacher_model": str(tmp_path)}  # any existing folder: the trigger fails first
    code = run_training_script(
        StudentConfig, StudentRole(), "student", ["-c", str(write_config(tmp_path / "s.yaml", config))]
    )
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "huge.png" in line and "too large to decode safely" in line

    config = classical_config(image_data["train"], tmp_path / "out")
    config["backdoor"] = {"target_idx": 0, "poisoning_rate": 0.5, "BlendedBackdoor": {"trigger_type": str(bomb)}}
    code, err = generate(tmp_path, capsys, config)
    line = one_error_line(err)
    assert code == 2 and "BlendedBackdoor.trigger_type" in line and "too large to decode safely" in line
    assert not (tmp_path / "out").exists()


# 10. The smaller ones -------------------------------------------------------------------------------------------


def teacher_argv(tmp_path, capsys, image_data, *argv: str) -> tuple[int, str]:
    path = write_config(tmp_path / "teacher.yaml", teacher_config_dict(image_data, tmp_path / "runs"))
    code = run_training_script(TeacherConfig, TeacherRole(), "teacher", ["-c", str(path), *argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dataset.root_train=/no/such/folder", "folder not found"),  # a check against the disk
        ("training.num_epochs=abc", "valid integer"),  # a schema error
        ("optimizer.SGD.lr=abc", "not a number"),  # a schema error inside a free-form block
        ("backdoor.target_idx=7", "outside the 3 classes"),  # a check against the data
    ],
)
def test_an_error_caused_by_a_set_value_names_the_override(tmp_path, capsys, image_data, override, message):
    code, err = teacher_argv(tmp_path, capsys, image_data, "--set", override)
    line = one_error_line(err)
    assert code == 2 and line.startswith(f"error: --set '{override}': ") and message in line, line
    assert "teacher.yaml" not in line


def test_an_error_of_the_file_still_names_the_file(tmp_path, capsys, image_data):
    code, err = teacher_argv(tmp_path, capsys, image_data, "--set", "training.num_epochs=2", "seed=3")
    assert code == 0, err
    config = teacher_config_dict(image_data, tmp_path / "runs", backdoor={"target_idx": 9})
    path = write_config(tmp_path / "bad.yaml", config)
    code = run_training_script(TeacherConfig, TeacherRole(), "teacher", ["-c", str(path), "--set", "seed=3"])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and line.startswith(f"error: {path}: backdoor.target_idx: 9")


@pytest.mark.parametrize(
    ("block", "key"),
    [
        ({"optimizer": {"SGD": {"lr": "abc"}}}, "SGD.lr: 'abc'"),
        ({"optimizer": {"Adam": {"lr": 0.001, "eps": "tiny"}}}, "Adam.eps: 'tiny'"),
        ({"lr_scheduler": {"StepLR": {"step_size": "two"}}}, "StepLR.step_size: 'two'"),
    ],
)
def test_text_where_a_number_belongs_names_the_key(tmp_path, capsys, image_data, block, key):
    code, err = teacher(tmp_path, capsys, teacher_config_dict(image_data, tmp_path / "runs", **block))
    line = one_error_line(err)
    assert code == 2 and key in line and "is not a number" in line and "not supported between" not in line, line


def test_a_pickled_training_state_is_refused_without_advice_to_unpickle_it(tmp_path, capsys, image_data):
    code, err = teacher_argv(tmp_path, capsys, image_data)
    assert code == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    state = run_dir / "checkpoints" / "epoch_0001" / "training_state.pt"
    torch.save({"format_version": 1, "epoch": PurePosixPath("pickled object")}, state)
    code = run_training_script(
        TeacherConfig, TeacherRole(), "teacher", ["--resume", str(run_dir), "--set", "training.num_epochs=2"]
    )
    line = one_error_line(capsys.readouterr().err)
    assert (
        code == 2
        and str(state) in line
        and "PurePosixPath" in line
        and "never unpickled" in line
        and "PurePosixPath" in line
    ), line
    assert "weights_only" not in line and "trust" not in line


GENERATOR_STOPPED_BY_SIGTERM = textwrap.dedent(
    """
    import os, signal, sys
    import generate_variations
    import variations.generator as generator
    from cli.runner import run_script
    from config.schema import VariationConfig

    real, calls = generator.run_model, []

    def run_model(backend, batch):  # SIGTERM arrives while the second batch is made
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(backend, batch)

    generator.run_model = run_model
    sys.exit(run_script(VariationConfig, generate_variations.generate, generate_variations.parser(), sys.argv[1:]))
    """
)


def test_sigterm_to_the_generator_says_stopped_and_releases_its_lock(tmp_path, capsys, image_data):
    out = tmp_path / "out"
    config = write_config(tmp_path / "v.yaml", classical_config(image_data["train"], out))
    script = tmp_path / "stopped_generator.py"
    script.write_text(GENERATOR_STOPPED_BY_SIGTERM)
    command = [sys.executable, str(script), "-c", str(config)]
    env = script_env(tmp_path) | {"PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 143, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("stopped by SIGTERM")]
    assert str(out) in line and "run it again" in line
    assert list(out.glob(".lock-part-*")) == []
    written = len(list(out.rglob("*.png")))
    assert 4 <= written < 18  # the first batch at least, never the whole folder
    code, err = generate(tmp_path, capsys, classical_config(image_data["train"], out))  # the same command goes on
    assert code == 0, err
    assert len(list(out.rglob("*.png"))) == 18 and list(out.glob(".lock-part-*")) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [("../../x", "x"), (".hidden", "hidden"), ("a/b c", "a_b_c"), ("", "test_resnet"), ("..", "test_resnet")],
)
def test_a_run_name_makes_a_visible_folder_inside_save_path(tmp_path, name, expected):
    run_dir = create_run_dir(tmp_path / "runs", name or "", fallback="test_resnet")
    assert run_dir.parent == tmp_path / "runs"
    assert run_dir.name.startswith(f"{expected}_") and not run_dir.name.startswith(".")


def test_a_run_name_with_dots_gives_a_visible_run_directory(tmp_path, capsys, image_data):
    code, err = teacher_argv(tmp_path, capsys, image_data, "--set", "wandb.args.name=../../x")
    assert code == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("x_")


def test_a_teacher_with_non_finite_weights_is_named_not_blamed_on_the_learning_rate(tmp_path, capsys, image_data):
    code, err = teacher_argv(tmp_path, capsys, image_data)
    assert code == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    checkpoint = run_dir / "model.safetensors"
    with safe_open(str(checkpoint), framework="pt") as handle:
        metadata = handle.metadata()
        weights = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    name = next(key for key, value in weights.items() if value.is_floating_point())
    weights[name][0] = float("nan")
    save_file(weights, str(checkpoint), metadata=metadata)
    with pytest.raises(UserError, match=rf"{checkpoint}: the teacher's weights are not finite .*{name}"):
        load_teacher(resolve_teacher(str(run_dir)))

    config = teacher_config_dict(image_data, tmp_path / "students", backdoor={"poisoning_rate": 0.0})
    config["distillation"] = {"teacher_model": str(run_dir)}
    path = write_config(tmp_path / "s.yaml", config)
    code = run_training_script(StudentConfig, StudentRole(), "student", ["-c", str(path)])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "not finite" in line and str(checkpoint) in line and "learning rate" not in line


def header(path: Path) -> bytes:
    length = int.from_bytes(path.read_bytes()[:8], "little")
    return path.read_bytes()[8 : 8 + length]


def test_identical_runs_write_identical_checkpoint_bytes(tmp_path, monkeypatch):
    """safetensors keeps the header's metadata in a hash map whose order changes from one process to the next
    (three teacher processes wrote two orders); here the other process's order is made on purpose."""
    import models.checkpoint as checkpoint

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    checkpoint.save_checkpoint(tmp_path / "a.safetensors", model, {"architecture": "test_resnet"})
    real_save_file = checkpoint.save_file

    def save_file_in_another_order(tensors, filename, metadata):
        real_save_file(tensors, filename, metadata=metadata)
        data = Path(filename).read_bytes()
        length = int.from_bytes(data[:8], "little")
        parsed = json.loads(data[8 : 8 + length])
        parsed["__metadata__"] = dict(reversed(list(parsed["__metadata__"].items())))
        text = json.dumps(parsed, separators=(",", ":")).encode().ljust(length)
        Path(filename).write_bytes(data[:8] + text + data[8 + length :])

    monkeypatch.setattr(checkpoint, "save_file", save_file_in_another_order)
    checkpoint.save_checkpoint(tmp_path / "b.safetensors", model, {"architecture": "test_resnet"})
    assert header(tmp_path / "a.safetensors").index(b'"backdoor_defense"') < header(tmp_path / "a.safetensors").index(
        b'"format"'
    )
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    with safe_open(str(tmp_path / "b.safetensors"), framework="pt") as handle:
        assert json.loads(handle.metadata()[METADATA_KEY])["architecture"] == "test_resnet"
        assert torch.equal(handle.get_tensor("weight"), model.weight.detach())


def test_a_source_image_edited_in_place_is_noticed_on_resume(tmp_path, capsys, image_data):
    out = tmp_path / "out"
    config = classical_config(image_data["train"], out)
    code, err = generate(tmp_path, capsys, config)
    assert code == 0, err
    edited = image_data["train"] / "dog" / "0002.png"
    make_image_folder(tmp_path / "other", classes=("dog",), per_class=3, size=20, seed=9)
    edited.write_bytes((tmp_path / "other" / "dog" / "0002.png").read_bytes())  # same name, other picture
    code, err = generate(tmp_path, capsys, config)
    line = one_error_line(err)
    assert code == 2 and "source data" in line and "sources_sizes_sha256" in line


def test_a_source_touched_without_a_change_still_resumes(tmp_path, capsys, image_data):
    """A copy of the data to another disk (new modification times, same bytes) is the same data."""
    out = tmp_path / "out"
    config = classical_config(image_data["train"], out)
    code, err = generate(tmp_path, capsys, config)
    assert code == 0, err
    later = time.time() + 100
    for path in image_data["train"].rglob("*.png"):
        os.utime(path, (later, later))
    code, err = generate(tmp_path, capsys, config)
    assert code == 0, err


def test_resuming_a_student_run_with_the_teacher_script_names_the_right_script(tmp_path, capsys, image_data):
    run_dir = tmp_path / "runs" / "student_run"
    config = teacher_config_dict(image_data, tmp_path / "runs")
    config["distillation"] = {"teacher_model": str(tmp_path)}
    write_config(run_dir / "config.yaml", config)
    code = run_training_script(TeacherConfig, TeacherRole(), "teacher", ["--resume", str(run_dir)])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "a student run" in line and "train_student.py --resume" in line and "unknown key" not in line

    del config["distillation"]
    write_config(run_dir / "config.yaml", config)
    code = run_training_script(StudentConfig, StudentRole(), "student", ["--resume", str(run_dir)])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "a teacher run" in line and "train_teacher.py --resume" in line


def test_a_folder_made_before_sizes_were_recorded_still_resumes(tmp_path, capsys, image_data):
    out = tmp_path / "out"
    config = classical_config(image_data["train"], out)
    code, err = generate(tmp_path, capsys, config)
    assert code == 0, err
    generation = json.loads((out / "generation.json").read_text())
    del generation[SIZES_KEY]
    (out / "generation.json").write_text(json.dumps(generation))
    assert variations_complete(load_config(VariationConfig, write_config(tmp_path / "v.yaml", config)))
    code, err = generate(tmp_path, capsys, config)
    assert code == 0, err
    assert SIZES_KEY in json.loads((out / "generation.json").read_text())
