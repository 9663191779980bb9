"""Running under a W&B sweep agent: the steps log ordinary runs, the agent's run gets the setting's results.

``wandb agent`` starts the program with ``WANDB_SWEEP_ID`` and ``WANDB_RUN_ID`` set, for one ``wandb.init``.
A pipeline makes one W&B run per step, which would all claim that id; so the steps run with those variables
removed, and at the end one run with the agent's id records the setting's keys and final metrics (one row
per grid point in the sweep's table, whose ``metric`` can name e.g. ``student/attack_success_rate``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from utils.tracking import start_wandb

SWEEP_VARIABLES = ("WANDB_SWEEP_ID", "WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH")


@contextlib.contextmanager
def outside_the_sweep() -> Iterator[dict[str, str]]:
    """Hide the agent's variables from the steps; yields them (empty when not under an agent)."""
    saved = {name: os.environ.pop(name) for name in SWEEP_VARIABLES if name in os.environ}
    try:
        yield saved
    finally:
        os.environ.update(saved)


def report_to_sweep(sweep: dict[str, str], config: dict, results: dict, folder: Path) -> None:
    """Log ``results`` (flat metric names) in the agent's run; nothing when not under an agent."""
    if "WANDB_SWEEP_ID" not in sweep:
        return
    import wandb

    wandb.teardown()  # W&B read the environment at its first run, without the agent's variables: read it again
    run = start_wandb(True, {}, config, folder / "sweep_wandb", "pipeline")
    if run is not None:
        run.summary.update(results)
        run.finish()
    wandb.teardown()  # later runs in this process must not inherit the sweep
