r"""Distil a (possibly backdoored) teacher into a student trained on the diffusion variations.

python train_student.py -c configs/defaults/student.yaml \
    --set distillation.teacher_model=results/resnet18_20261124_101500
python train_student.py -c configs/paper/student.yaml --print-config \
    --set distillation.teacher_model=my-team/backdoor_models/3kq9x2ab

A stopped run goes on with: python train_student.py --resume RUN_DIR
"""

import sys

from cli.arguments import config_parser, examples_of, parse_arguments

EXAMPLE_OVERRIDES = "distillation.temperature=4 training.num_epochs=5"


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(__doc__.splitlines()[0], True, examples_of(__doc__), EXAMPLE_OVERRIDES)
    parse_arguments(parser, argv)  # --help and unknown flags end here, before torch is imported
    from cli.runner import run_training_script
    from config.schema import StudentConfig
    from training.roles import StudentRole

    return run_training_script(StudentConfig, StudentRole(), parser, argv)


if __name__ == "__main__":
    sys.exit(main())
