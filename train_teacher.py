"""Train a classifier on (possibly poisoned) data and measure how well the backdoor took hold.

python train_teacher.py -c configs/defaults/teacher_badnets.yaml [--set training.num_epochs=5 seed=7]
python train_teacher.py --resume results/resnet18_20261124_101500    # go on after a stop
"""

import sys

from config.cli import run_training_script
from config.schema import TeacherConfig
from training.roles import TeacherRole

if __name__ == "__main__":
    sys.exit(run_training_script(TeacherConfig, TeacherRole(), __doc__.splitlines()[0]))
