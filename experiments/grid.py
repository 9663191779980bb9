"""The points of a W&B grid sweep file, for schedulers without W&B (one Slurm array task per point).

    python -m experiments.grid configs/sweeps/demo_grid.yaml --count     # number of grid points
    python -m experiments.grid configs/sweeps/demo_grid.yaml 4           # point 4's --key=value words
    python -m experiments.grid configs/sweeps/demo_grid.yaml --options   # the command's fixed words

Both the W&B sweep and the Slurm array read the grid from the same file, so they run the same settings.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from config.yaml_files import read_yaml
from utils.errors import UserError


def grid_points(sweep_file: Path) -> list[list[str]]:
    """Every combination of the file's ``parameters`` (``values`` lists, or one ``value``), as --key=value words."""
    parameters = read_yaml(sweep_file).get("parameters") or {}
    if not parameters:
        raise UserError(f"{sweep_file}: no parameters")
    choices = []
    for name, spec in parameters.items():
        if not isinstance(spec, dict) or not ("values" in spec or "value" in spec):
            raise UserError(f"{sweep_file}: parameters.{name} needs values: [...] or value: (grid sweeps only)")
        choices.append([f"--{name}={value}" for value in spec.get("values", [spec.get("value")])])
    return [list(point) for point in itertools.product(*choices)]


def fixed_options(sweep_file: Path) -> list[str]:
    """The words of the file's ``command`` other than W&B's macros (``${args}``, ``${program}``...)."""
    return [str(word) for word in read_yaml(sweep_file).get("command") or [] if not str(word).startswith("${")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_file", type=Path)
    parser.add_argument("index", type=int, nargs="?", help="0-based grid point (e.g. $SLURM_ARRAY_TASK_ID)")
    parser.add_argument("--count", action="store_true", help="print the number of grid points")
    parser.add_argument("--options", action="store_true", help="print the command's fixed words, one a line")
    args = parser.parse_args(argv)
    try:
        points = grid_points(args.sweep_file)
        if args.options:
            print("\n".join(fixed_options(args.sweep_file)))
        elif args.count or args.index is None:
            print(len(points))
        elif not 0 <= args.index < len(points):
            raise UserError(f"grid point {args.index} does not exist: {args.sweep_file} has 0..{len(points) - 1}")
        else:
            print("\n".join(points[args.index]))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
