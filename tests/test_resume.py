"""Resumable training: per-epoch states, ``--resume``, SIGTERM/SIGINT, disk full while saving.

The runs go through the real command line in this process (``cli.runner.run_script``), with real signals and
a real file-size limit (RLIMIT_FSIZE: the kernel refuses the write with EFBIG, as a full disk refuses with ENOSPC).
"""

import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

import training.evaluation
from cli.runner import run_training_script
from config.schema import StudentConfig, TeacherConfig
from models.classifier_factory import classifier_from_checkpoint
from tests.conftest import (
    REPO,
    assert_same_checkpoint,
    script_env,
    stopped_after,
    teacher_config_dict,
    wait_for_a_state,
    write_config,
)
from training.roles import StudentRole, TeacherRole

TIMINGS = ("train/images_per_second", "train/epoch_seconds")  # wall-clock: the only numbers allowed to differ


def teacher_cli(capsys, *argv: str) -> tuple[int, str]:
    code = run_training_script(TeacherConfig, TeacherRole(), "teacher", list(argv))
    return code, capsys.readouterr().err


def student_cli(capsys, *argv: str) -> tuple[int, str]:
    code = run_training_script(StudentConfig, StudentRole(), "student", list(argv))
    return code, capsys.readouterr().err


def metrics(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in record.items() if k not in TIMINGS} for record in records]


def states(run_dir: Path) -> list[str]:
    return sorted(path.name for path in (run_dir / "checkpoints").iterdir())


def resume_line(err: str) -> str:
    (line,) = [line for line in err.splitlines() if "--resume" in line]
    return line


class WhenAStateExists:
    """Run ``action`` from another thread as soon as the first epoch's state is on disk (while the block runs)."""

    def __init__(self, runs: Path, action, pattern: str = "*"):
        self.runs, self.action, self.pattern, self.done = runs, action, pattern, threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def watch(self):
        while not self.done.is_set():
            if list(self.runs.glob(f"{self.pattern}/checkpoints/epoch_0001")):
                self.action()
                return
            time.sleep(0.002)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


def long_config(image_data, runs: Path, **training) -> dict:
    """Many short epochs: a signal sent after the first one arrives while the run is still going."""
    return teacher_config_dict(
        image_data, runs, training={"num_epochs": 12, "batch_size": 6, "dataloader_num_workers": 0, **training}
    )


def stopped_copy(full: Path, stopped: Path) -> Path:
    """The run directory of the run ``full`` as a kill after its first epoch would have left it."""
    shutil.copytree(full, stopped)
    for folder in (stopped / "checkpoints").iterdir():
        if folder.name != "epoch_0001":
            shutil.rmtree(folder)
    for name in ("model.safetensors", "summary.json"):
        (stopped / name).unlink()
    lines = (full / "metrics.jsonl").read_text().splitlines(keepends=True)
    (stopped / "metrics.jsonl").write_text(lines[0])
    return stopped


def assert_same_run(resumed: Path, full: Path) -> None:
    assert_same_checkpoint(resumed / "model.safetensors", full / "model.safetensors")
    assert metrics(resumed) == metrics(full)
    summaries = [json.loads((d / "summary.json").read_text()) for d in (resumed, full)]
    for summary in summaries:
        summary.pop("seconds")
    assert summaries[0] == summaries[1]


class StopInEvaluation:
    """Raise SIGTERM in this thread (handled before ``raise_signal`` returns) as evaluation number ``call`` starts."""

    def __init__(self, call: int):
        self.calls, self.call = 0, call

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.call:
            signal.raise_signal(signal.SIGTERM)
        return self.real(*args, **kwargs)

    def __enter__(self):
        self.real, training.evaluation.evaluate = training.evaluation.evaluate, self
        self.previous = signal.signal(signal.SIGTERM, lambda *_: None)  # if the run did not own it: not pytest's end
        return self

    def __exit__(self, *exc):
        training.evaluation.evaluate = self.real
        signal.signal(signal.SIGTERM, self.previous)


# the optimiser's state holds the current lr, so only a scheduler whose next lr depends on its own state (its
# epoch count) shows a missing restore; StepLR with step_size 1 (lr × gamma every epoch) would not
COSINE = {"CosineAnnealingLR": {"T_max": 3}}


@pytest.mark.parametrize(
    ("workers", "lr_scheduler", "stop"),
    [
        pytest.param(0, None, "killed", id="killed-after-epoch-1"),
        pytest.param(1, COSINE, "killed", id="loader-worker-cosine-killed-after-epoch-1"),
        pytest.param(0, COSINE, "sigterm-in-evaluation", id="cosine-sigterm-in-the-last-evaluation"),
    ],
)
def test_resumed_run_ends_exactly_like_an_uninterrupted_one(tmp_path, capsys, image_data, workers, lr_scheduler, stop):
    """Random poisoning and augmentations drawn in the main process (0) or in a loader worker (1).

    A SIGTERM during the evaluation after the last epoch abandons it: the resumed run trains that epoch again.
    """
    epochs = 3 if stop == "killed" else 2
    config = teacher_config_dict(
        image_data,
        tmp_path / "runs",
        backdoor={"random_poisoning": True},
        transformations={"RandomHorizontalFlip": {"p": 0.5}, "RandomErasing": {"p": 0.5}},
        lr_scheduler=lr_scheduler,
        training={
            "num_epochs": epochs,
            "batch_size": 4,
            "dataloader_num_workers": workers,
            "eval_every": 2,
            "keep_checkpoints": 3,
        },
    )
    code, err = teacher_cli(capsys, "-c", str(write_config(tmp_path / "t.yaml", config)))
    assert code == 0, err
    (full,) = (tmp_path / "runs").iterdir()
    assert states(full) == [f"epoch_{epoch:04d}" for epoch in range(1, epochs + 1)]
    state = torch.load(full / "checkpoints" / "epoch_0001" / "training_state.pt", weights_only=True)
    assert state["epoch"] == 1 and [r["step"] for r in state["history"]] == [1]
    _, metadata = classifier_from_checkpoint(full / "checkpoints" / "epoch_0001" / "model.safetensors")
    assert metadata["class_names"] == ["cat", "dog", "frog"]  # a state's weights serve as a checkpoint, too

    if stop == "killed":
        stopped = stopped_copy(full, tmp_path / "stopped")
    else:  # the same run again, stopped by SIGTERM as the triggered test set of epoch 2 (the last) is evaluated
        config["training"]["save_path"] = str(tmp_path / "stopped_runs")
        with StopInEvaluation(call=2):  # the clean, then the triggered test set
            code, err = teacher_cli(capsys, "-c", str(write_config(tmp_path / "t.yaml", config)))
        (stopped,) = (tmp_path / "stopped_runs").iterdir()
        kept = stopped / "checkpoints" / "epoch_0001"
        assert code == 143, err
        line = resume_line(err)
        assert line.startswith("stopped by SIGTERM while evaluating epoch 2 in test (triggered), batch 1; ")
        assert f"the state of epoch 1 is kept in {kept}; resume with: " in line
        assert states(stopped) == ["epoch_0001"] and [r["step"] for r in metrics(stopped)] == [1]
    code, err = teacher_cli(capsys, "--resume", str(stopped))
    assert code == 0, err
    assert_same_run(stopped, full)


def test_resumed_student_ends_exactly_like_an_uninterrupted_one(tmp_path, capsys, image_data):
    """Distillation (the teacher's outputs enter the loss) with a learning-rate schedule."""
    teacher_config = teacher_config_dict(image_data, tmp_path / "teachers")
    code, err = teacher_cli(capsys, "-c", str(write_config(tmp_path / "t.yaml", teacher_config)))
    assert code == 0, err
    (teacher,) = (tmp_path / "teachers").iterdir()
    config = teacher_config_dict(
        image_data,
        tmp_path / "runs",
        backdoor={"poisoning_rate": 0.0},
        distillation={"alpha": 0.5, "temperature": 4.0, "teacher_model": str(teacher)},
        transformations={"RandomHorizontalFlip": {"p": 0.5}},
        lr_scheduler={"StepLR": {"step_size": 2}},  # a fresh one after epoch 1 would not decay after epoch 2
        training={"num_epochs": 3, "batch_size": 6, "keep_checkpoints": 3},
    )
    code, err = student_cli(capsys, "-c", str(write_config(tmp_path / "s.yaml", config)))
    assert code == 0, err
    (full,) = (tmp_path / "runs").iterdir()
    stopped = stopped_copy(full, tmp_path / "stopped")
    code, err = student_cli(capsys, "--resume", str(stopped))
    assert code == 0, err
    assert_same_run(stopped, full)


def test_sigterm_stops_at_a_step_boundary_and_the_printed_command_resumes(tmp_path, capsys, image_data):
    runs = tmp_path / "runs"
    config_path = write_config(tmp_path / "t.yaml", long_config(image_data, runs))
    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # a late signal must not end pytest itself
    try:
        with WhenAStateExists(runs, lambda: os.kill(os.getpid(), signal.SIGTERM)):
            code, err = teacher_cli(capsys, "-c", str(config_path))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 143, err
    (run_dir,) = runs.iterdir()
    (kept,) = states(run_dir)  # keep_checkpoints: 1
    line = resume_line(err)
    epoch = stopped_after(line, "SIGTERM")
    assert kept == f"epoch_{epoch:04d}" and f"kept in {run_dir / 'checkpoints' / kept}; resume with: " in line
    assert [r["step"] for r in metrics(run_dir)] == list(range(1, epoch + 1))
    assert line.endswith(f"--resume {run_dir}")
    assert "Traceback" not in err and not (run_dir / "summary.json").exists()

    argv = shlex.split(line.partition("resume with: ")[2])
    code, err = teacher_cli(capsys, *argv[argv.index("--resume") :])
    assert code == 0, err
    assert [r["step"] for r in metrics(run_dir)] == list(range(1, 13))
    assert states(run_dir) == ["epoch_0012"] and (run_dir / "summary.json").is_file()
    code, err = teacher_cli(capsys, "--resume", str(run_dir))
    assert code == 2 and "already finished" in err and "training.num_epochs" in err


def test_ctrl_c_to_the_process_group_with_loader_workers(tmp_path, image_data):
    """A terminal's Ctrl-C reaches the loader workers too (as Slurm's SIGTERM does): they leave stopping to the run."""
    runs = tmp_path / "runs"
    config_path = write_config(tmp_path / "t.yaml", long_config(image_data, runs, dataloader_num_workers=2))
    script = REPO / "train_teacher.py"
    env = script_env(tmp_path)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # an activated virtual environment
    process = subprocess.Popen(
        [sys.executable, str(script), "-c", str(config_path)],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a job in a terminal
    )
    wait_for_a_state(runs, process)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    (run_dir,) = runs.iterdir()
    line = resume_line(err)
    assert line.endswith(f"resume with: {shlex.join(['python', str(script), '--resume', str(run_dir)])}")
    assert "Traceback" not in err and "DataLoader worker" not in err
    epoch = stopped_after(line, "SIGINT")
    assert states(run_dir) == [f"epoch_{epoch:04d}"] and len(metrics(run_dir)) == epoch


class FileSizeLimit:
    """RLIMIT_FSIZE on this process, switched on and off at will; SIGXFSZ ignored so that writes fail with EFBIG."""

    def __init__(self, limit: int):
        self.limit = limit
        self.saved = resource.getrlimit(resource.RLIMIT_FSIZE)

    def on(self):
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.saved[1]))

    def off(self):
        resource.setrlimit(resource.RLIMIT_FSIZE, self.saved)

    def __enter__(self):
        self.previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        return self

    def __exit__(self, *exc):
        self.off()
        signal.signal(signal.SIGXFSZ, self.previous_handler)


def test_disk_full_while_saving_keeps_the_last_state_and_says_how_to_go_on(tmp_path, capsys, image_data):
    runs = tmp_path / "runs"
    config_path = write_config(tmp_path / "t.yaml", long_config(image_data, runs, num_epochs=8))
    # 256 KiB: config, metrics and summary fit; the weights (1.5 MB) and the optimiser state do not
    with FileSizeLimit(256 * 1024) as limit:
        # the disk fills up during training: a later epoch's state cannot be written
        with WhenAStateExists(runs, limit.on):
            code, err = teacher_cli(capsys, "-c", str(config_path))
        limit.off()
        assert code == 1, err
        (run_dir,) = runs.iterdir()
        (kept,) = states(run_dir)  # the failed state left no temporary folder behind
        epoch = int(kept.removeprefix("epoch_"))
        line = resume_line(err)
        folder = run_dir / "checkpoints" / f"epoch_{epoch + 1:04d}"
        assert line.startswith(f"error: cannot write the state of epoch {epoch + 1} to {folder} (File too large); ")
        assert f"the state of epoch {epoch} is kept in {run_dir / 'checkpoints' / kept}; free some space" in line
        assert "Traceback" not in err

        code, err = teacher_cli(capsys, "--resume", str(run_dir))  # space freed: go on
        assert code == 0, err
        final = tmp_path / "final.safetensors"
        shutil.copy(run_dir / "model.safetensors", final)

        # the disk fills up between the last epoch's state and the final checkpoint (what a failed final save
        # leaves: the state of the last epoch, no model.safetensors, no summary.json)
        for name in ("model.safetensors", "summary.json"):
            (run_dir / name).unlink()
        limit.on()
        code, err = teacher_cli(capsys, "--resume", str(run_dir))
        limit.off()
    assert code == 1, err
    line = resume_line(err)
    assert line.startswith(f"error: cannot write {run_dir / 'model.safetensors'} (File too large); ")
    assert f"the state of epoch 8 (the last) is kept in {run_dir / 'checkpoints' / 'epoch_0008'}" in line
    assert "Traceback" not in err
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith("model")) == []
    assert states(run_dir) == ["epoch_0008"]

    code, err = teacher_cli(capsys, "--resume", str(run_dir))
    assert code == 0, err
    assert_same_checkpoint(run_dir / "model.safetensors", final)
    assert [r["step"] for r in metrics(run_dir)] == list(range(1, 9))


def wandb_teardown():
    import wandb

    wandb.teardown()


def test_resume_refuses_another_config_and_unsafe_overrides_and_keeps_the_wandb_run(
    tmp_path, capsys, monkeypatch, request, image_data
):
    for name, value in script_env(tmp_path).items():
        if name.startswith("WANDB_"):
            monkeypatch.setenv(name, value)  # offline, the real library
    wandb = {"enable_logging": True, "args": {"project": "tests"}}
    config = teacher_config_dict(image_data, tmp_path / "runs", training={"num_epochs": 1}, wandb=wandb)
    config_path = write_config(tmp_path / "t.yaml", config)
    request.addfinalizer(wandb_teardown)  # W&B's process-wide singleton keeps this test's environment
    code, err = teacher_cli(capsys, "-c", str(config_path))
    assert code == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    for argv, fragment in [
        (["--resume", str(run_dir), "-c", str(config_path)], "drop -c/--config"),
        (["--resume", str(run_dir), "--set", "seed=3"], "--set seed: a resumed run keeps its saved config"),
        (["--resume", str(tmp_path)], f"--resume {tmp_path}: no config.yaml"),
        (["--resume", str(run_dir), "--set", "training.num_epochs=0"], "training.num_epochs"),
        (["--resume", str(run_dir)], "already finished"),
    ]:
        code, err = teacher_cli(capsys, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1 and fragment in err, (argv, err)
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["training"]["num_epochs"] == 1  # nothing was rewritten

    code, err = teacher_cli(capsys, "--resume", str(run_dir), "--set", "training.num_epochs=2")  # train longer
    assert code == 0, err
    assert [r["step"] for r in metrics(run_dir)] == [1, 2]
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["training"]["num_epochs"] == 2
    sessions = sorted(run_dir.glob("wandb/offline-run-*"))
    # offline-run-<time>-<id>, with "-1" added when both sessions started within the same second
    run_ids = {re.fullmatch(r"offline-run-\d{8}_\d{6}-(\w+?)(-\d+)?", path.name).group(1) for path in sessions}
    assert len(sessions) == 2 and len(run_ids) == 1  # one W&B run id


SCHEDULERS = {
    "StepLR": {"step_size": 2},
    "MultiStepLR": {"milestones": [2, 4]},
    "CosineAnnealingLR": {"T_max": 10},
    "CosineAnnealingWarmRestarts": {"T_0": 3},
    "OneCycleLR": {"max_lr": 0.1, "total_steps": 10},
    "CyclicLR": {"base_lr": 0.01, "max_lr": 0.1},
    "ReduceLROnPlateau": {},
    "LinearLR": {},
    "PolynomialLR": {},
}


def test_optimiser_and_scheduler_states_load_without_unpickling(tmp_path):
    """What training_state.pt holds for the usual torch.optim classes passes torch.load(weights_only=True)."""
    from training.optim import build_lr_scheduler, build_optimizer, step_scheduler
    from utils.seeding import rng_state

    for name, kwargs in SCHEDULERS.items():
        for optimizer_spec in ({"SGD": {"lr": 0.1, "momentum": 0.9}}, {"AdamW": {"lr": 0.1}}):
            weight = torch.nn.Parameter(torch.ones(2))
            optimizer = build_optimizer(optimizer_spec, [weight])
            scheduler = build_lr_scheduler({name: kwargs}, optimizer)
            weight.sum().backward()
            optimizer.step()
            step_scheduler(scheduler, 1.0)
            state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()}
            torch.save(state, tmp_path / "state.pt")
            loaded = torch.load(tmp_path / "state.pt", weights_only=True)
            assert loaded["scheduler"].keys() == state["scheduler"].keys(), name
