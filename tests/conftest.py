"""Shared fixtures: tiny generated ImageFolders, config files, and a runner for the real scripts."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "cifar10"


def make_image_folder(root: Path, classes=("cat", "dog", "frog"), per_class: int = 4, size: int = 16, seed: int = 0):
    """Class-coloured noisy PNGs named 0000.png, 0001.png... in every class folder (like CIFAR-10)."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        base = np.array([(60 + 90 * label) % 256, (200 - 70 * label) % 256, (30 + 110 * label) % 256])
        for i in range(per_class):
            pixels = np.clip(base + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(autouse=True)
def _no_logging_into_closed_captures():
    """Scripts run in-process point the root logger at the sys.stderr of the moment, a test's capture that
    closes with the test; later log lines would hit the closed stream."""
    yield
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)


@pytest.fixture
def image_data(tmp_path) -> dict[str, Path]:
    """``train`` (3 classes × 6) and ``test`` (3 classes × 4) folders of 16×16 images."""
    return {
        "train": make_image_folder(tmp_path / "data" / "train", per_class=6, seed=1),
        "test": make_image_folder(tmp_path / "data" / "test", per_class=4, seed=2),
    }


def free_port() -> int:
    """A TCP port nothing listens on now, so parallel test runs on one machine never share a rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_a_state(runs: Path, process: subprocess.Popen) -> None:
    """Until the first epoch's state of a run under ``runs`` is on disk, or ``process`` has ended."""
    while process.poll() is None and not list(runs.glob("*/checkpoints/epoch_0001")):
        time.sleep(0.002)


def assert_same_checkpoint(a: Path, b: Path) -> None:
    """Bit-identical tensors and equal metadata (the bytes may differ: safetensors orders the header freely)."""
    import torch
    from safetensors import safe_open

    tensors = []
    for path in (a, b):
        with safe_open(str(path), framework="pt") as handle:
            tensors.append(({k: handle.get_tensor(k) for k in handle.keys()}, handle.metadata()))  # noqa: SIM118
    (first, first_meta), (second, second_meta) = tensors
    assert first_meta == second_meta and first.keys() == second.keys()
    assert [k for k in first if not torch.equal(first[k], second[k])] == []


def stopped_after(line: str, signal_name: str) -> int:
    """The epoch a stop line says is kept; the stop came at a step of the next epoch, or just after the kept one."""
    kept = int(line.partition("the state of epoch ")[2].split()[0])
    assert line.startswith(
        (f"stopped by {signal_name} in epoch {kept + 1}, step ", f"stopped by {signal_name} after epoch {kept};")
    ), line
    return kept


def write_config(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def teacher_config_dict(image_data, save_path: Path, **sections) -> dict:
    """A 1-epoch, CPU-sized teacher config on the fixture data."""
    config = {
        "seed": 0,
        "model": {"architecture": "test_resnet"},
        "dataset": {"root_train": str(image_data["train"]), "root_test": str(image_data["test"]), "image_size": 16},
        "backdoor": {"target_idx": 0, "poisoning_rate": 0.5, "PatchBackdoor": {"trigger_size": 3}},
        "training": {"num_epochs": 1, "batch_size": 8, "dataloader_num_workers": 0, "save_path": str(save_path)},
        "wandb": {"enable_logging": False},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return config


def script_env(tmp_path: Path) -> dict[str, str]:
    # not W&B's service address (WANDB_SERVICE, which wandb.init puts in this process's environment): a script
    # starts its own service, and patching this environment in cannot revive a service that was torn down
    env = {name: value for name, value in os.environ.items() if name != "WANDB_SERVICE"}
    env.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_CACHE_DIR=str(tmp_path / "wandb_cache"),
        WANDB_CONFIG_DIR=str(tmp_path / "wandb_config"),
        WANDB_DATA_DIR=str(tmp_path / "wandb_data"),
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def run_script(
    tmp_path: Path, script: str, *args: str, timeout: int = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run one of the project's scripts as a user would, from the repository root (``env``: extra variables)."""
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        cwd=REPO,
        env=script_env(tmp_path) | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def tiny_vd_model(tmp_path_factory) -> Path:
    """A random tiny Versatile Diffusion image-variation pipeline saved with save_pretrained."""
    from benchmarks.random_pipelines import build_random_pipeline

    folder = tmp_path_factory.mktemp("tiny_vd")
    build_random_pipeline("tiny", seed=0).save_pretrained(folder)
    return folder


def variation_config_dict(source: Path, output: Path, model: Path, **sections) -> dict:
    """Variations of the fixture data with the tiny pipeline: 32×32 outputs, 2 denoising steps.

    ``model_batch_size: 4`` exercises the batched (GPU-style) path; delete it for the CPU default of 1.
    """
    config = {
        "seed": 5,
        "output_folder": str(output),
        "dataset": {"root": str(source), "image_size": 16, "batch_size": 4, "num_workers": 0},
        "backdoor": {"target_idx": 0, "poisoning_rate": 0.5, "PatchBackdoor": {"trigger_size": 3}},
        "diffusion": {"model": str(model), "inference_steps": 2, "height": 32, "width": 32, "model_batch_size": 4},
        "device": "cpu",
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return config


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module: on 2 shared cores two threads can be 30× slower, and byte comparisons
    between runs of one process need the same count throughout (modules opt in with ``usefixtures``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def random_models(tmp_path_factory) -> dict[str, dict[str, str]]:
    """Per diffusion backend, the ``diffusion`` keys naming its tiny random pipelines (hub layouts, extras
    included), built once per test process."""
    from benchmarks.random_pipelines import save_random_models
    from variations.backends import BACKENDS

    root = tmp_path_factory.mktemp("random_models")
    return {name: save_random_models(name, root / name, layout="hub") for name in BACKENDS if name != "classical"}
