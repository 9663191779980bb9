r"""Distil a (possibly backdoored) teacher into a student trained on the diffusion variations.

python train_student.py -c configs/defaults/student.yaml
python train_student.py -c configs/defaults/student.yaml \
    --set distillation.teacher_model=results/resnet18_20261124_101500
python train_student.py -c configs/defaults/student.yaml \
    --set distillation.teacher_model=my-team/backdoor_models/3kq9x2ab
python train_student.py --resume results/resnet18_20261124_113000    # go on after a stop
"""

import sys

from config.cli import run_training_script
from config.schema import StudentConfig
from training.roles import StudentRole

if __name__ == "__main__":
    sys.exit(run_training_script(StudentConfig, StudentRole(), __doc__.splitlines()[0]))
