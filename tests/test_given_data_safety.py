"""Hostile inputs, second round (issue 20): nothing hangs, nothing the tool did not write is deleted, no run or
output folder is read as data, no student trains on unfinished variations, no broken image is met after outputs
exist. Each case: one line, exit code 2, the given data untouched."""

from __future__ import annotations

import json
import multiprocessing
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import generate_variations
from cli.runner import run_script as run_cli
from cli.runner import run_training_script
from config.schema import StudentConfig, VariationConfig
from tests.conftest import REPO, make_image_folder, script_env, teacher_config_dict, write_config
from tests.test_hostile_inputs import classical_config, generate, one_error_line, teacher
from training.roles import StudentRole


def truncated_jpeg(path: Path) -> Path:
    """A JPEG whose header is whole but whose body stops half-way (a copy cut short, a download broken off)."""
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG", quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# 1. A broken image met during an epoch, with loader workers ------------------------------------------------------

# The real script, with an image that goes bad right after the up-front check (a file rewritten on a shared disk
# while the run starts): the check cannot see it, the epoch meets it.
BREAK_AFTER_CHECK = textwrap.dedent(
    """
    import runpy, sys
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    import datasets.build

    checked = datasets.build.check_images

    def check_then_cut(*args, **kwargs):
        checked(*args, **kwargs)
        path = Path({victim!r})
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    datasets.build.check_images = check_then_cut
    sys.argv = ["train_teacher.py", "-c", {config!r}]
    runpy.run_path({script!r}, run_name="__main__")
    """
)


def run_in_own_group(command: list[str], env: dict, timeout: float) -> tuple[int, str, int]:
    """Run ``command`` in a new process group; on timeout kill the whole group (workers too) and fail the test."""
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, err = process.communicate()
        pytest.fail(f"still running after {timeout} s (hung after: {err.strip().splitlines()[-1:]})")
    return process.returncode, err, process.pid


def group_is_gone(pgid: int, wait: float = 5.0) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_an_image_that_breaks_during_an_epoch_with_workers_exits_promptly(tmp_path, image_data):
    victim = image_data["test"] / "dog" / "0001.jpg"  # large enough that half of it still holds the header
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(victim, quality=95)
    config = teacher_config_dict(image_data, tmp_path / "runs", training={"dataloader_num_workers": 1})
    path = write_config(tmp_path / "teacher.yaml", config)
    code = BREAK_AFTER_CHECK.format(
        repo=str(REPO), victim=str(victim), config=str(path), script=str(REPO / "train_teacher.py")
    )
    returncode, err, pgid = run_in_own_group([sys.executable, "-c", code], script_env(tmp_path), timeout=90)
    line = one_error_line(err)
    assert returncode == 2 and str(victim) in line and "truncated" in line
    assert group_is_gone(pgid), "loader workers outlived the script"


def test_loader_workers_still_referenced_are_ended(tmp_path):
    """The fallback when a failed run's loader is still reachable (nothing to collect): its workers, which ignore
    SIGTERM, are killed, and torch's SIGCHLD watch does not turn that into an error."""
    import torch
    from torch.utils.data import DataLoader

    from training.setup import init_worker
    from utils.stop_signals import end_loader_workers

    before = set(multiprocessing.active_children())
    loader = DataLoader(torch.arange(64), batch_size=4, num_workers=2, worker_init_fn=init_worker, prefetch_factor=1)
    iterator = iter(loader)
    next(iterator)
    workers = [p for p in multiprocessing.active_children() if p not in before]
    assert len(workers) == 2 and all(p.is_alive() for p in workers)
    end_loader_workers(before)
    assert not any(p.is_alive() for p in workers)
    time.sleep(0.1)  # a SIGCHLD error would surface at the next bytecode boundaries
    del iterator


# 2. Deleting given data --------------------------------------------------------------------------------------------


def test_generator_refuses_to_write_into_its_own_data(tmp_path, capsys, image_data):
    """The issue's case: dataset.root and output_folder both one existing variations folder, then --overwrite."""
    made = tmp_path / "variations"
    assert generate(tmp_path, capsys, classical_config(image_data["train"], made))[0] == 0
    before = files_of(made)
    config = classical_config(made, made, seed=6)
    for extra in ([], ["--overwrite"]):
        code, err = generate(tmp_path, capsys, config, *extra)
        line = one_error_line(err)
        assert code == 2 and "output_folder" in line and "dataset.root" in line and "same folder" in line, line
        assert files_of(made) == before


@pytest.mark.parametrize("case", ["output_inside_the_data", "data_inside_the_output", "through_a_link"])
def test_generator_refuses_an_output_folder_overlapping_its_data(tmp_path, capsys, image_data, case):
    data = image_data["train"]
    before = files_of(data)
    if case == "output_inside_the_data":
        output, expected = data / "out", "inside dataset.root"
    elif case == "data_inside_the_output":
        output, expected = data.parent, "holds dataset.root"
    else:
        (tmp_path / "link").symlink_to(data, target_is_directory=True)
        output, expected = tmp_path / "link" / "dog" / "out", "inside dataset.root"
    code, err = generate(tmp_path, capsys, classical_config(data, output), "--overwrite")
    line = one_error_line(err)
    assert code == 2 and line.count("output_folder") == 1 and expected in line, line
    assert files_of(data) == before


def test_overwrite_refuses_a_folder_holding_files_it_did_not_write(tmp_path, capsys, image_data):
    out = tmp_path / "out"
    assert generate(tmp_path, capsys, classical_config(image_data["train"], out))[0] == 0
    (out / "cat" / "my_notes.txt").write_text("mine")
    (out / "labels.csv").write_text("mine too")
    before = files_of(out)
    changed = classical_config(image_data["train"], out, seed=6)
    code, err = generate(tmp_path, capsys, changed, "--overwrite")
    line = one_error_line(err)
    assert code == 2 and "--overwrite" in line and "generate_variations.py did not write" in line, line
    assert str(out / "cat" / "my_notes.txt") in line or str(out / "labels.csv") in line
    assert files_of(out) == before  # nothing deleted, not even its own files
    (out / "cat" / "my_notes.txt").unlink()
    (out / "labels.csv").unlink()
    code, err = generate(tmp_path, capsys, changed, "--overwrite")
    assert code == 0, err
    assert json.loads((out / "generation.json").read_text()) and len(list(out.rglob("*.png"))) == 18


def test_overwrite_keeps_a_sources_folder_it_did_not_write(tmp_path, capsys, image_data):
    """``<output_folder>_sources`` is the generator's only when it wrote its copies there."""
    out = tmp_path / "out"
    mine = make_image_folder(tmp_path / "out_sources", per_class=2)
    before = files_of(mine)
    assert generate(tmp_path, capsys, classical_config(image_data["train"], out))[0] == 0
    code, err = generate(tmp_path, capsys, classical_config(image_data["train"], out, seed=6), "--overwrite")
    assert code == 0, err
    assert files_of(mine) == before


def test_overwrite_replaces_its_own_source_copies(tmp_path, capsys, image_data):
    out = tmp_path / "out"
    config = classical_config(image_data["train"], out, save_source_copies=True)
    assert generate(tmp_path, capsys, config)[0] == 0
    copies = sorted(files_of(tmp_path / "out_sources"))
    assert len(copies) == 18
    code, err = generate(tmp_path, capsys, {**config, "save_source_copies": False, "seed": 6}, "--overwrite")
    assert code == 0, err
    assert not (tmp_path / "out_sources").exists()


def test_demo_refuses_an_out_folder_it_did_not_make(tmp_path, capsys, monkeypatch):
    """``python -m demo --out DIR`` (its main, in this process) on a folder of the user's."""
    import demo.run_demo

    def went_ahead(*args, **kwargs):
        raise AssertionError("the demo went ahead")

    monkeypatch.setattr(demo.run_demo, "generate_demo_dataset", went_ahead)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    monkeypatch.setattr(sys, "argv", ["demo", "--data", str(tmp_path / "demo_data"), "--out", str(out)])
    with pytest.raises(SystemExit) as ended:
        demo.run_demo.main()
    assert (out / "thesis.tex").read_text() == "years of work"
    line = one_error_line(capsys.readouterr().err)
    assert ended.value.code == 2 and "--out" in line and str(out) in line and "not made by the demo" in line, line


def test_demo_output_folder_is_replaced_only_where_the_demo_wrote(tmp_path):
    from demo.run_demo import prepare_output
    from utils.errors import UserError

    out = tmp_path / "demo_results"
    prepare_output(out, tmp_path / "demo_data")
    (out / "experiments" / "setting").mkdir(parents=True)
    (out / "results.md").write_text("old table")
    (out / "notes.txt").write_text("the user's")
    prepare_output(out, tmp_path / "demo_data")  # a second demo run on the same folder
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["notes.txt"]
    for data, message in [(out / "data", "holds --data"), (tmp_path, "is inside --data")]:
        with pytest.raises(UserError, match=message):
            prepare_output(out, data)
    with pytest.raises(UserError, match="not made by the demo"):
        prepare_output(REPO, tmp_path / "demo_data")  # --out . in the checkout


# 4. Run and output folders inside the data ----------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_run_folder_inside_the_data_is_refused(tmp_path, capsys, image_data, split):
    before = {name: files_of(folder) for name, folder in image_data.items()}
    save_path = image_data[split] / "dog" / "runs"
    code, err = teacher(tmp_path, capsys, teacher_config_dict(image_data, save_path))
    line = one_error_line(err)
    key = "dataset.root_train" if split == "train" else "dataset.root_test"
    assert code == 2 and "training.save_path" in line and f"inside {key}" in line, line
    assert not save_path.exists()
    assert {name: files_of(folder) for name, folder in image_data.items()} == before


def test_run_pipeline_refuses_an_output_inside_the_data(tmp_path, capsys, image_data):
    """run_pipeline.py sets its steps' output paths itself (under --out): they are checked once final."""
    import run_pipeline
    from tests.test_experiments import experiment_files

    before = files_of(image_data["train"])
    experiment = experiment_files(tmp_path, image_data)
    out = image_data["train"] / "dog" / "experiments"
    assert run_pipeline.main(["-c", str(experiment), "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "teacher.yaml: training.save_path" in line and "inside dataset.root_train" in line, line
    assert files_of(image_data["train"]) == before and not out.exists()


def test_a_run_directory_left_inside_the_data_is_refused(tmp_path, capsys, image_data):
    """A run made before the check existed (or moved there): its samples.png would be read as an image."""
    code, err = teacher(tmp_path, capsys, teacher_config_dict(image_data, tmp_path / "runs"))
    assert code == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    run_dir.rename(image_data["train"] / "dog" / run_dir.name)
    code, err = teacher(tmp_path, capsys, teacher_config_dict(image_data, tmp_path / "runs2"))
    line = one_error_line(err)
    assert code == 2 and str(image_data["train"] / "dog" / run_dir.name) in line and "run directory" in line, line
    assert not (tmp_path / "runs2").exists()


# 5. Unfinished variations -----------------------------------------------------------------------------------------


def student(tmp_path, capsys, variations: Path, test: Path) -> tuple[int, str]:
    data = {"train": variations, "test": test}
    config = teacher_config_dict(data, tmp_path / "student_runs", backdoor={"poisoning_rate": 0.0})
    config["distillation"] = {"teacher_model": str(tmp_path / "no_teacher_needed_yet.safetensors")}
    (tmp_path / "no_teacher_needed_yet.safetensors").write_bytes(b"")  # the folder is refused before it is read
    path = write_config(tmp_path / "student.yaml", config)
    code = run_training_script(StudentConfig, StudentRole(), "student", ["-c", str(path)])
    return code, capsys.readouterr().err


def killed_generator(tmp_path: Path, out: Path) -> None:
    """What kill -9 of the generator leaves: some outputs, no manifest.jsonl, the dead job's lock file."""
    code = f"import os, signal, sys; sys.path.insert(0, {str(REPO)!r}); from utils.folder_lock import PartLock; "
    code += f"PartLock.acquire({str(out)!r}, 0, 1); os.kill(os.getpid(), signal.SIGKILL)"
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    (out / "manifest.jsonl").unlink()
    for png in sorted(out.rglob("*.png"))[:2]:
        png.unlink()


def test_student_refuses_unfinished_variations_and_names_the_command_that_finishes_them(tmp_path, capsys, image_data):
    out = tmp_path / "variations"
    assert generate(tmp_path, capsys, classical_config(image_data["train"], out))[0] == 0
    killed_generator(tmp_path, out)
    code, err = student(tmp_path, capsys, out, image_data["test"])
    line = one_error_line(err)
    assert code == 2 and "dataset.root_train" in line and "unfinished" in line and "manifest.jsonl" in line, line
    command = line.partition("finish it with: ")[2]
    assert command == f"python generate_variations.py -c {out / 'config.yaml'}", line
    assert not (tmp_path / "student_runs").exists()
    words = shlex.split(command)  # the suggested command, run (in this process): it finishes the folder
    assert words[:2] == ["python", "generate_variations.py"]
    finish = run_cli(VariationConfig, generate_variations.generate, generate_variations.parser(), words[2:])
    assert finish == 0, capsys.readouterr().err
    assert len(list(out.rglob("*.png"))) == 18 and not list(out.glob(".lock-*"))
    from config.data_checks import check_training_data
    from config.loading import load_config

    check_training_data(load_config(StudentConfig, tmp_path / "student.yaml"))


def test_student_refuses_variations_a_generator_is_still_writing(tmp_path, capsys, image_data):
    from utils.folder_lock import PartLock

    out = tmp_path / "variations"
    assert generate(tmp_path, capsys, classical_config(image_data["train"], out))[0] == 0
    lock = PartLock.acquire(out, 0, 2)  # a shard job at work on the folder (its manifest is the old one)
    try:
        code, err = student(tmp_path, capsys, out, image_data["test"])
    finally:
        lock.release()
    line = one_error_line(err)
    assert code == 2 and "in use by pid" in line and str(os.getpid()) in line, line


# 6. Truncated image bodies ---------------------------------------------------------------------------------------


def test_truncated_image_body_is_found_before_any_output(tmp_path, capsys, image_data):
    bad = truncated_jpeg(image_data["train"] / "dog" / "cut.jpg")
    code, err = teacher(tmp_path, capsys, teacher_config_dict(image_data, tmp_path / "runs"))
    line = one_error_line(err)
    assert code == 2 and str(bad) in line and "truncated" in line, line
    assert not (tmp_path / "runs").exists()
    code, err = generate(tmp_path, capsys, classical_config(image_data["train"], tmp_path / "out"))
    line = one_error_line(err)
    assert code == 2 and str(bad) in line and "truncated" in line, line
    assert not (tmp_path / "out").exists()
