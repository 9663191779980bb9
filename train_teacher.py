"""Train a classifier on (possibly poisoned) data and measure how well the backdoor took hold.

python train_teacher.py -c configs/defaults/teacher_badnets.yaml [--set training.num_epochs=5 seed=7]
python train_teacher.py --resume results/resnet18_20261124_101500    # go on after a stop
"""

from __future__ import annotations

import sys

from config.cli import config_parser, run_script
from config.schema import TeacherConfig
from training.pipeline import run_training
from training.roles import TeacherRole


def main(cfg: TeacherConfig, args=None) -> dict:
    return run_training(cfg, TeacherRole(), resume=getattr(args, "resume", None))


def parser():
    return config_parser(__doc__.splitlines()[0], resumable=True)


if __name__ == "__main__":
    sys.exit(run_script(TeacherConfig, main, parser()))
