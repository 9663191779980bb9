"""torchrun with 2 gloo processes on CPU: teacher and student, compared with single-process evaluation."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from config.loading import validate_config
from config.schema import StudentConfig, TeacherConfig
from datasets.build import build_experiment_data
from datasets.image_folder import scan_image_folder
from datasets.poison_plan import fixed_poison_indices
from models.classifier_factory import classifier_from_checkpoint
from tests.conftest import (
    REPO,
    assert_same_checkpoint,
    free_port,
    make_image_folder,
    script_env,
    stopped_after,
    teacher_config_dict,
    wait_for_a_state,
    write_config,
)
from training.compute import Compute
from training.evaluation import BackdoorEvaluator
from training.setup import LoaderSpec, make_loader
from utils.distributed import ShardSampler


def torchrun_argv(script: str, port: int, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
        str(REPO / script),
        *args,
    ]


def torchrun(tmp_path, script: str, config, port: int, *extra: str) -> subprocess.CompletedProcess:
    argv = torchrun_argv(script, port, *(["-c", str(config)] if config else []), *extra)
    return subprocess.run(argv, cwd=REPO, env=script_env(tmp_path), capture_output=True, text=True, timeout=600)


def single_process_metrics(run_dir, schema=TeacherConfig):
    """Evaluate the saved checkpoint in this process on the test sets its config describes."""
    config = validate_config(schema, yaml.safe_load((run_dir / "config.yaml").read_text()))
    model, metadata = classifier_from_checkpoint(run_dir / "model.safetensors")
    data = build_experiment_data(config)
    spec = LoaderSpec(batch_size=5, num_workers=0, shuffle=False, seed=0)
    clean, triggered = (make_loader(d, spec) for d in (data.clean_test, data.triggered_test))
    evaluator = BackdoorEvaluator(clean, triggered, Compute(torch.device("cpu")), metadata["class_names"], data.targets)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # like each torchrun process: same kernels, same sums
    try:
        return evaluator(model)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp_data")
    # odd counts: the test shards differ in size, the training shards get DistributedSampler padding
    return {
        "train": make_image_folder(root / "train", per_class=7, seed=1),
        "test": make_image_folder(root / "test", per_class=5, seed=2),
    }


@pytest.fixture(scope="module")
def ddp_teacher(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("ddp_teacher")
    config = teacher_config_dict(
        data,
        tmp / "runs",
        training={"num_epochs": 2, "batch_size": 8, "eval_every": 1, "keep_checkpoints": 2},
        transformations={"RandomHorizontalFlip": {"p": 0.5}},  # per-process random streams, for the resume test
    )
    result = torchrun(tmp, "train_teacher.py", write_config(tmp / "t.yaml", config), free_port())
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "runs", result


def test_teacher_under_torchrun(ddp_teacher, data):
    runs, result = ddp_teacher
    (run_dir,) = list(runs.iterdir())  # only rank 0 made a run directory
    for name in ("config.yaml", "poison_indices.json", "metrics.jsonl", "summary.json", "model.safetensors"):
        assert (run_dir / name).is_file()
    labels = scan_image_folder(data["train"]).labels
    assert (
        json.loads((run_dir / "poison_indices.json").read_text())
        == fixed_poison_indices(labels, 0, 0.5, False, 0).tolist()
    )
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # one writer
    summary = json.loads((run_dir / "summary.json").read_text())
    reference = single_process_metrics(run_dir)
    for key in ("clean_accuracy", "attack_success_rate", "robust_accuracy", "per_class_accuracy"):
        assert summary[key] == reference[key], key
    assert summary["clean_loss"] == pytest.approx(reference["clean_loss"], rel=1e-5)
    assert result.stderr.count("run directory:") == 2  # start and end lines, from rank 0 alone


def test_student_under_torchrun(tmp_path, ddp_teacher, data):
    runs, _ = ddp_teacher
    (teacher_dir,) = list(runs.iterdir())
    config = teacher_config_dict(data, tmp_path / "students", training={"num_epochs": 1, "batch_size": 8})
    config["backdoor"]["poisoning_rate"] = 0.0
    config["distillation"] = {"teacher_model": str(teacher_dir), "temperature": 4.0}
    result = torchrun(tmp_path, "train_student.py", write_config(tmp_path / "s.yaml", config), free_port())
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = list((tmp_path / "students").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    reference = single_process_metrics(run_dir, StudentConfig)
    for key in ("clean_accuracy", "attack_success_rate", "robust_accuracy"):
        assert summary["student"][key] == reference[key]
    teacher_summary = json.loads((teacher_dir / "summary.json").read_text())
    assert summary["teacher"]["clean_accuracy"] == teacher_summary["clean_accuracy"]


def test_uneven_global_batch_is_refused(tmp_path, data):
    config = teacher_config_dict(data, tmp_path / "runs", training={"batch_size": 7})
    result = torchrun(tmp_path, "train_teacher.py", write_config(tmp_path / "t.yaml", config), free_port())
    assert result.returncode != 0
    assert "training.batch_size: 7 (the global batch) does not split evenly over 2 processes" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_shard_sampler_covers_each_index_once():
    shards = [list(ShardSampler(11, rank, 3)) for rank in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(11))
    assert [len(s) for s in shards] == [4, 4, 3]


def test_resume_under_torchrun_ends_exactly_like_the_uninterrupted_run(tmp_path, ddp_teacher):
    """Every process restores its own random streams (augmentations differ per process) and the shared weights."""
    runs, _ = ddp_teacher
    (full,) = list(runs.iterdir())
    stopped = tmp_path / "stopped"
    shutil.copytree(full, stopped)
    shutil.rmtree(stopped / "checkpoints" / "epoch_0002")
    for name in ("model.safetensors", "summary.json"):
        (stopped / name).unlink()
    result = torchrun(tmp_path, "train_teacher.py", None, free_port(), "--resume", str(stopped))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_checkpoint(stopped / "model.safetensors", full / "model.safetensors")
    summaries = [json.loads((d / "summary.json").read_text()) for d in (stopped, full)]
    for summary in summaries:
        summary.pop("seconds")
        summary.pop("environment")  # where and how it ran: the command line differs (--resume)
    assert summaries[0] == summaries[1]


def worker_pid(launcher: int, rank: int) -> int:
    """The process torchrun started for ``rank`` (from /proc: its parent and its environment)."""
    for proc in Path("/proc").iterdir():
        try:
            parent = next(line for line in (proc / "status").read_text().splitlines() if line.startswith("PPid:"))
            environment = (proc / "environ").read_bytes().split(b"\0")
            if int(parent.split()[1]) == launcher and f"RANK={rank}".encode() in environment:
                return int(proc.name)
        except (OSError, ValueError, StopIteration):
            continue
    raise AssertionError(f"no process of rank {rank} under {launcher}")


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds torchrun's workers through /proc")
def test_sigterm_to_one_process_stops_every_process_at_the_same_step(tmp_path, data):
    runs = tmp_path / "runs"
    config = teacher_config_dict(data, runs, training={"num_epochs": 40, "batch_size": 8})
    config_path = write_config(tmp_path / "t.yaml", config)
    launcher = subprocess.Popen(
        torchrun_argv("train_teacher.py", free_port(), "-c", str(config_path)),
        cwd=REPO,
        env=script_env(tmp_path),
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_a_state(runs, launcher)
    os.kill(worker_pid(launcher.pid, rank=1), signal.SIGTERM)  # only this process sees the signal
    _, err = launcher.communicate(timeout=300)
    (run_dir,) = runs.iterdir()
    (line,) = [line for line in err.splitlines() if "--resume" in line]  # one line, from rank 0
    epoch = stopped_after(line, "SIGTERM")
    assert line.endswith(f"resume with: torchrun --nproc_per_node 2 {REPO / 'train_teacher.py'} --resume {run_dir}")
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == [f"epoch_{epoch:04d}"]
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == epoch
    # torchrun reports the workers it saw end (any exit code but 0 is a failure to it; a worker that ends after
    # the first may be listed or not): all with 143, and its report holds the only traceback
    codes = re.findall(r"exitcode  : (\d+)", err)
    assert codes and set(codes) == {"143"}, err[-3000:]
    assert err.count("Traceback") == 1 and "raise ChildFailedError(" in err
