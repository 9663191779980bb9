r"""Distil a (possibly backdoored) teacher into a student trained on the diffusion variations.

python train_student.py -c configs/defaults/student.yaml
python train_student.py -c configs/defaults/student.yaml \
    --set distillation.teacher_model=results/resnet18_20261124_101500
python train_student.py -c configs/defaults/student.yaml \
    --set distillation.teacher_model=my-team/backdoor_models/3kq9x2ab
python train_student.py --resume results/resnet18_20261124_113000    # go on after a stop
"""

from __future__ import annotations

import sys

from config.cli import config_parser, run_script
from config.schema import StudentConfig
from training.pipeline import run_training
from training.roles import StudentRole


def main(cfg: StudentConfig, args=None) -> dict:
    return run_training(cfg, StudentRole(), resume=getattr(args, "resume", None))


def parser():
    return config_parser(__doc__.splitlines()[0], resumable=True)


if __name__ == "__main__":
    sys.exit(run_script(StudentConfig, main, parser()))
