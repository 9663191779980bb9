"""Train a classifier on (possibly poisoned) data and measure how well the backdoor took hold.

python train_teacher.py -c configs/defaults/teacher_badnets.yaml
python train_teacher.py -c configs/defaults/teacher_blended.yaml --set training.num_epochs=5 seed=7
python train_teacher.py -c configs/cifar10/teacher_badnets.yaml --print-config

A stopped run goes on with: python train_teacher.py --resume RUN_DIR
"""

import sys

from cli.training_entry import training_main


def schema_and_role() -> tuple:
    from config.schema import TeacherConfig
    from training.roles import TeacherRole

    return TeacherConfig, TeacherRole()


if __name__ == "__main__":
    sys.exit(training_main(__doc__, "training.num_epochs=5 seed=7", schema_and_role))
