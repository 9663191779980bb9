"""Screen (attack, variation model) pairs before any training: how much of each trigger survives regeneration.

    python screen_triggers.py --attacks configs/cifar10/teacher_badnets.yaml configs/cifar10/teacher_sig.yaml \
        --variations configs/cifar10/variations.yaml configs/cifar10/variations_ddpm.yaml:diffusion.strength=0.3 \
        --data ../shared/data/cifar10/train --first 2500 --per-class 10 --out results/screen

Each variation model makes one variation of N clean images and of the same images with the trigger, with the
same seeds; survival is the share of the trigger's pixel change that passes through (1: all, 0: none), fidelity
the mean change of the clean images (grey levels). Minutes on a CPU, no classifier.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--attacks", type=Path, nargs="+", required=True, help="teacher configs (their backdoor block)")
    p.add_argument("--variations", nargs="+", required=True, help="variation configs, each PATH[:key=value,...]")
    p.add_argument("--data", type=Path, required=True, help="ImageFolder the images are taken from")
    p.add_argument("--first", type=int, default=0, help="first image taken in each class (ImageFolder order)")
    p.add_argument("--per-class", type=int, default=10, help="images per class")
    p.add_argument("--batch-size", type=int, default=16, help="images per model call on a GPU")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--out", type=Path, help="also write OUT/screen.md and OUT/screen.json")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)  # --help ends here, before torch is imported
    from cli.runner import run_guarded
    from experiments.trigger_screen import HEADER, run_screen, write_outputs

    if args.first < 0 or args.per_class < 1:
        print("error: --first must be ≥ 0 and --per-class ≥ 1", file=sys.stderr)
        return 2

    def work() -> None:
        print(f"{HEADER}\n|---|---|---|---|---|---|", flush=True)
        rows = run_screen(args)
        if args.out is not None:
            write_outputs(rows, args.out, shlex.join(["python", "screen_triggers.py", *argv]))

    return run_guarded(work)


if __name__ == "__main__":
    sys.exit(main())
