"""Every CIFAR-10 attack through the method, on the half of the training set the CIFAR-10 purifier never saw.

    python -m benchmarks.cifar10_evidence --detect                    # every attack, classical variations
    python -m benchmarks.cifar10_evidence --detect --clean-student --cleaned-student drop \\
        --variations configs/cifar10/variations.yaml configs/cifar10/variations_ddpm.yaml
    python -m benchmarks.cifar10_evidence --attacks sig patch_image --variations \\
        configs/cifar10/variations_ddpm.yaml:diffusion.strength=0.3 \\
        configs/cifar10/variations_ddpm.yaml:diffusion.strength=0.4  # a sweep beside 0.5: one teacher per attack
    python -m benchmarks.cifar10_evidence --attacks sig --per-class 100 --test-per-class 20 --set training.num_epochs=1

Each (attack, variation config) is one ``run_pipeline.py`` setting of ``configs/cifar10/experiment.yaml`` with the
teacher ``configs/cifar10/teacher_<attack>.yaml``, trained on images ``--first`` … ``--first + --per-class − 1`` of
every class (default 2,500–3,499: the second half, which ``purifiers/ddpm_cifar10`` was not trained on) and tested on
the whole test set (the last example is a pilot). Every teacher is trained first, then the variation configs run in
the order given, every attack for the first before the next; finished steps are skipped (an interrupted run resumes).
With ``--collect`` nothing runs: the tables are written from the settings already finished (say, by one Slurm job per
attack, each with its own ``--attacks`` and ``--out`` shared), naming those that are not. Otherwise, after each
setting the tables (CA / ASR per model; AUROC and TPR at 5 % FPR per detector) are rewritten to
``<out>/evidence.md`` and ``evidence.json``, the picture to ``<out>/evidence.png``, and each attack's poisoned
images with their variations to ``<out>/samples_<attack>.png``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "cifar10"
# the order the attacks run in: the most studied first
ATTACKS = ("badnets", "blended", "sig", "wanet", "bpp", "patch_image", "clean_label", "all_to_all")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--attacks", nargs="+", choices=ATTACKS, default=list(ATTACKS), help="teacher_<attack>.yaml")
    p.add_argument(
        "--variations",
        nargs="+",
        default=[str(CONFIGS / "variations.yaml")],
        help="variation configs, each PATH[:key=value,...] (the overrides reach the variations step only)",
    )
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "cifar10", help="train/ and test/")
    p.add_argument("--first", type=int, default=2500, help="first training image taken in each class")
    p.add_argument("--per-class", type=int, default=1000, help="training images per class")
    p.add_argument("--test-per-class", type=int, help="pilot: the first N test images per class (default: all)")
    p.add_argument("--out", type=Path, default=REPO / "results" / "cifar10_evidence")
    p.add_argument("--clean-student", action="store_true", help="also a student on the clean images (upper bound)")
    p.add_argument("--detect", action="store_true", help="also score every training image for poison")
    p.add_argument("--cleaned-student", choices=("drop", "relabel"), help="also a student without the flagged images")
    p.add_argument(
        "--collect",
        action="store_true",
        help="run nothing: write the tables from the settings already finished (e.g. by one job per attack)",
    )
    p.add_argument("--set", dest="extra", nargs="+", default=[], help="overrides for every setting (key=value)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)  # --help ends here, before torch is imported
    from cli.runner import run_guarded
    from experiments.evidence import EvidencePlan, run_evidence, tables

    if args.first < 0 or args.per_class < 1 or (args.test_per_class is not None and args.test_per_class < 1):
        print("error: --first must be ≥ 0, --per-class and --test-per-class ≥ 1", file=sys.stderr)
        return 2
    plan = EvidencePlan(
        experiment=CONFIGS / "experiment.yaml",
        teachers={attack: CONFIGS / f"teacher_{attack}.yaml" for attack in args.attacks},
        variations=args.variations,
        data=args.data,
        first=args.first,
        per_class=args.per_class,
        test_per_class=args.test_per_class,
        out=args.out,
        clean_student=args.clean_student,
        detection=args.detect,
        cleaned_student=args.cleaned_student,
        overrides=args.extra,
        command=shlex.join(["python", "-m", "benchmarks.cifar10_evidence", *argv]),
    )
    start = time.perf_counter()
    rows, missing = [], []

    def run() -> None:
        found = run_evidence(plan, collect=args.collect)
        rows.extend(found[0])
        missing.extend(found[1])

    code = run_guarded(run, lambda _: plan.command)  # stopped: run it again
    if rows or missing:
        print(tables(plan, rows, missing))
    print(f"{(time.perf_counter() - start) / 60:.1f} min", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
