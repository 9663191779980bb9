"""Run the whole method for one setting: teacher → variations → student, skipping steps already complete.

    python run_pipeline.py -c configs/demo/experiment.yaml --clean-student
    python run_pipeline.py -c configs/demo/experiment.yaml seed=1 backdoor.poisoning_rate=0.05
    python run_pipeline.py --teacher T.yaml --variations V.yaml --student S.yaml --out results/experiments
    torchrun --nproc_per_node 4 run_pipeline.py -c experiment.yaml

Overrides (key=value, --key=value or --set key=value) reach every step whose config has the key; a step
name in front aims at one step (teacher.training.num_epochs=5). Words naming this script's options are those
options, as sweeps pass them: teacher=T.yaml, output=DIR, clean_student=true. The teacher's seed and backdoor
block are passed on to configs that leave them out; configs that disagree stop the run before it starts.
Each teacher config and each variation config gets its own folder (OUT/<setting>/<backend>/; a further config
that name does not tell apart: <setting>-<what differs>, <backend>-<what differs>), so one teacher serves a
sweep of variation settings, and --dry-run names the folders and the steps that would run.
A stopped run (SIGTERM, Ctrl-C) goes on from its last complete epoch when the same command is run again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.arguments import add_override_option, parse_arguments
from datasets.setting_keys import STEPS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("-c", "--config", type=Path, help="experiment file naming the three configs")
    for step in STEPS:
        p.add_argument(f"--{step}", type=Path, help=f"{step} config (instead of the experiment file's)")
    # --output too: the experiment file's key, which a sweep's parameter is likely to be named after
    p.add_argument("--out", "--output", type=Path, help="experiment folder: each setting goes to OUT/<setting>/")
    p.add_argument("--clean-student", action="store_true", help="also distil a student on the clean images")
    p.add_argument("--detect", action="store_true", help="also flag poisoned training images from the variations")
    p.add_argument("--cleaned-student", choices=("drop", "relabel"), help="also a student without the flagged images")
    p.add_argument("--teacher-only", action="store_true", help="train (or find) the teacher, then stop")
    p.add_argument("--dry-run", action="store_true", help="check the configs, list the steps that would run, stop")
    add_override_option(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(parser(), argv)  # --help and unknown flags end here, before torch is imported
    from cli.runner import run_guarded, same_command
    from experiments.experiment_file import CommandLine, experiment_spec
    from experiments.pipeline import run_experiment

    command = CommandLine(
        experiment=args.config,
        configs={step: getattr(args, step) for step in STEPS},
        output=args.out,
        clean_student=args.clean_student,
        overrides=args.overrides,
        detection=args.detect,
        cleaned_student=args.cleaned_student,
    )
    return run_guarded(
        lambda: run_experiment(experiment_spec(command), dry_run=args.dry_run, teacher_only=args.teacher_only),
        same_command("run_pipeline.py", argv),
    )


if __name__ == "__main__":
    sys.exit(main())
