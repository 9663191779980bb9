"""Train a classifier on (possibly poisoned) data and measure how well the backdoor took hold.

python train_teacher.py -c configs/defaults/teacher_badnets.yaml
python train_teacher.py -c configs/defaults/teacher_blended.yaml --set training.num_epochs=5 seed=7
python train_teacher.py -c configs/cifar10/teacher_badnets.yaml --print-config

A stopped run goes on with: python train_teacher.py --resume RUN_DIR
"""

import sys

from cli.arguments import config_parser, examples_of, parse_arguments

EXAMPLE_OVERRIDES = "training.num_epochs=5 seed=7"


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(__doc__.splitlines()[0], True, examples_of(__doc__), EXAMPLE_OVERRIDES)
    parse_arguments(parser, argv)  # --help and unknown flags end here, before torch is imported
    from cli.runner import run_training_script
    from config.schema import TeacherConfig
    from training.roles import TeacherRole

    return run_training_script(TeacherConfig, TeacherRole(), parser, argv)


if __name__ == "__main__":
    sys.exit(main())
