"""Regenerate every (possibly poisoned) training image as a diffusion variation.

    python generate_variations.py -c configs/defaults/variations.yaml
    torchrun --nproc_per_node 4 generate_variations.py -c configs/defaults/variations.yaml
    python generate_variations.py -c configs/defaults/variations.yaml --shard 2/8
    python generate_variations.py -c configs/cifar10/variations_ddpm.yaml --set diffusion.strength=0.4 --print-config

The output folder is an ImageFolder for the student. Re-running the same command resumes.
"""

from __future__ import annotations

import sys

from cli.arguments import config_parser, examples_of, parse_arguments


def generate(cfg, args) -> dict:
    from variations.run import RunOptions, run_variations

    return run_variations(cfg, RunOptions(shard=args.shard, overwrite=args.overwrite))


def parser():
    p = config_parser(__doc__.splitlines()[0], False, examples_of(__doc__), "diffusion.inference_steps=25 seed=7")
    p.add_argument("--shard", default=None, metavar="I/N", help="do only the I-th of N disjoint parts (1-based)")
    p.add_argument("--overwrite", action="store_true", help="replace an output folder made with another config")
    return p


def main(argv: list[str] | None = None) -> int:
    parse_arguments(parser(), argv)  # --help and unknown flags end here, before torch is imported
    from cli.runner import run_script
    from config.schema import VariationConfig

    return run_script(VariationConfig, generate, parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
