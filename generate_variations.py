"""Regenerate every (possibly poisoned) training image as a diffusion variation.

    python generate_variations.py -c configs/defaults/variations.yaml
    torchrun --nproc_per_node 4 generate_variations.py -c configs/defaults/variations.yaml
    python generate_variations.py -c configs/defaults/variations.yaml --shard 2/8

The output folder is an ImageFolder for the student. Re-running the same command resumes.
"""

from __future__ import annotations

import sys

from config.cli import config_parser, run_script
from config.schema import VariationConfig
from variations.run import RunOptions, run_variations


def main(cfg: VariationConfig, args) -> dict:
    return run_variations(cfg, RunOptions(shard=args.shard, overwrite=args.overwrite))


def parser():
    p = config_parser(__doc__.splitlines()[0])
    p.add_argument("--shard", default=None, metavar="I/N", help="do only the I-th of N disjoint parts (1-based)")
    p.add_argument("--overwrite", action="store_true", help="replace an output folder made with another config")
    return p


if __name__ == "__main__":
    sys.exit(run_script(VariationConfig, main, parser()))
