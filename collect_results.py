"""Aggregate teacher and student runs over seeds: tables (Markdown, CSV, LaTeX) and plots.

    python collect_results.py results/experiments
    python collect_results.py results/experiments more_runs/ --out tables --group-by attack,poisoning_rate,role

Finds run directories under the paths (symlinked folders followed), groups them by setting (default:
dataset_name, architecture, attack, poisoning_rate, target_type, variation_backend, role, plus any config key
that tells apart runs those keys would mix, e.g. backdoor.clean_label or variations.diffusion.strength; any
dotted config key works too) and writes mean ± standard deviation and n of CA, ASR, RA and DER. Incomplete,
superseded and unreadable runs are listed apart, with the reason.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from datasets.setting_keys import DEFAULT_GROUP_BY


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("paths", nargs="+", type=Path, help="folders to search for run directories")
    p.add_argument("--out", type=Path, default=Path("results/tables"), help="where tables and plots go")
    p.add_argument(
        "--group-by",
        default=",".join(DEFAULT_GROUP_BY),
        metavar="KEY,...",
        help="setting keys or dotted config keys that define a group (default: %(default)s)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)  # --help ends here, before torch is imported
    from cli.runner import run_guarded
    from experiments.collect import collect_results

    group_by = tuple(key.strip() for key in args.group_by.split(",") if key.strip())
    return run_guarded(lambda: collect_results(args.paths, args.out, group_by))


if __name__ == "__main__":
    sys.exit(main())
