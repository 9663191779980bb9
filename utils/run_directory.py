"""The run directory: everything a run produces, enough to reuse its model offline."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from utils.atomic_io import atomic_write_json

CONFIG_NAME = "config.yaml"
METRICS_NAME = "metrics.jsonl"
SUMMARY_NAME = "summary.json"
POISON_INDICES_NAME = "poison_indices.json"
SAMPLES_NAME = "samples.png"


def create_run_dir(save_path: Path, name: str) -> Path:
    """``<save_path>/<name>_<YYYYmmdd_HHMMSS>``, with ``_2``, ``_3``... if that already exists."""
    base = f"{name.replace('/', '_').replace(' ', '_')}_{time.strftime('%Y%m%d_%H%M%S')}"
    save_path.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        run_dir = save_path / (base if attempt == 1 else f"{base}_{attempt}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a run directory for {base} in {save_path}")


def write_poison_indices(run_dir: Path, indices: np.ndarray) -> None:
    atomic_write_json(run_dir / POISON_INDICES_NAME, sorted(int(i) for i in indices))
