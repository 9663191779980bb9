"""Which training images are poisoned? Score each by how much the teacher's evidence for its label drops from the
source to its variation(s), beside the Spectral Signatures baseline; optionally write a cleaned training folder.

    python detect_poison.py --teacher results/teacher_run --variations results/variations
    python detect_poison.py --teacher RUN --variations VARS --train data/train --out results/detection
    python detect_poison.py --teacher RUN --variations VARS --clean drop     # then train a student on the result

Writes suspects.csv (index, path, label, score, flagged, ...), detection.json (threshold rules, counts and, where
the teacher run's poison_indices.json gives the truth, AUROC, TPR at 1 %/5 % FPR, precision, recall, F1) and
score_histogram.png into --out (default: <variations>_detection). --clean drop|relabel writes
<variations>_cleaned_<mode>: the variations without the flagged images, or with them filed under the teacher's
class on their variations.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--teacher", type=Path, required=True, help="the teacher's run directory")
    p.add_argument("--variations", type=Path, required=True, help="variations folder of its training set")
    p.add_argument("--train", type=Path, help="the training set (default: the teacher config's dataset.root_train)")
    p.add_argument("--out", type=Path, help="output folder (default: <variations>_detection)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128, help="sources per forward pass (default: %(default)s)")
    p.add_argument("--workers", type=int, default=0, help="image-loading processes (default: %(default)s)")
    p.add_argument("--clean", metavar="drop|relabel", help="also write the cleaned training folder for a student")
    p.add_argument("--cleaned-out", type=Path, help="where (default: <variations>_cleaned_<mode>)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.batch_size < 1 or args.workers < 0:
        parser().error("--batch-size must be at least 1 and --workers at least 0")
    from cli.runner import run_guarded  # after parsing: --help answers before torch is imported
    from detection.cleaning import MODES, build_cleaned_folder
    from detection.run import default_output, run_detection

    if args.clean is not None and args.clean not in MODES:
        parser().error(f"argument --clean: invalid choice: {args.clean!r} (choose from {', '.join(MODES)})")

    out = args.out or default_output(args.variations)

    def work() -> None:
        run_detection(args.teacher, args.variations, args.train, out, args.device, args.batch_size, args.workers)
        if args.clean:
            name = f"{args.variations.name}_cleaned_{args.clean}"
            cleaned = args.cleaned_out or args.variations.with_name(name)
            block = build_cleaned_folder(args.variations, out, cleaned, args.clean)
            print(f"cleaned training folder ({args.clean}: {block['flagged']} flagged): {cleaned}")

    return run_guarded(work)


if __name__ == "__main__":
    sys.exit(main())
