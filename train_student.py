r"""Distil a (possibly backdoored) teacher into a student trained on the diffusion variations.

python train_student.py -c configs/defaults/student.yaml \
    --set distillation.teacher_model=results/resnet18_20261124_101500
python train_student.py -c configs/paper/student.yaml --print-config \
    --set distillation.teacher_model=my-team/backdoor_models/3kq9x2ab

A stopped run goes on with: python train_student.py --resume RUN_DIR
"""

import sys

from cli.training_entry import training_main


def schema_and_role() -> tuple:
    from config.schema import StudentConfig
    from training.roles import StudentRole

    return StudentConfig, StudentRole()


if __name__ == "__main__":
    sys.exit(training_main(__doc__, "distillation.temperature=4 training.num_epochs=5", schema_and_role))
