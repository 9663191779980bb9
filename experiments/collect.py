"""``collect_results.py``: find runs, group them by setting, write tables and plots, list what was left out."""

from __future__ import annotations

import logging
from pathlib import Path

from experiments.aggregate import (
    DEFAULT_GROUP_BY,
    Group,
    aggregate,
    check_group_by,
    mark_superseded,
    with_distinguishing_keys,
)
from experiments.result_plots import write_plots
from experiments.result_tables import write_tables
from experiments.run_discovery import FoundRun, find_runs
from utils.errors import UserError

log = logging.getLogger(__name__)


def collect_results(paths: list[Path], out: Path, group_by: tuple[str, ...]) -> tuple[list[Group], list[FoundRun]]:
    """Write results.md, results.csv, runs.csv, results.tex and the plots into ``out``.

    With the default ``group_by``, config keys that tell apart runs those keys would group together are added
    as group keys; a ``group_by`` given by the user is taken as it is (it may average settings on purpose)."""
    missing = [str(path) for path in paths if not Path(path).exists()]
    if missing:
        raise UserError(f"not found: {', '.join(missing)}")
    runs = find_runs(paths)
    if not runs:
        where = ", ".join(map(str, paths))
        raise UserError(f"no teacher or student run directories (config.yaml with a training section) under {where}")
    check_group_by(runs, group_by)
    mark_superseded(runs, group_by)
    if group_by == DEFAULT_GROUP_BY:  # never average two settings the default keys do not tell apart
        group_by = with_distinguishing_keys(runs, group_by)
    groups = aggregate(runs, group_by)
    text = write_tables(groups, runs, group_by, out)
    plots = write_plots(groups, group_by, out)
    counted = sum(run.complete for run in runs)
    log.info("%s\n", text)
    log.info(
        "%d runs found, %d counted in %d groups, %d not counted; wrote %s/results.md, results.csv, runs.csv, "
        "results.tex%s",
        len(runs),
        counted,
        len(groups),
        len(runs) - counted,
        out,
        "".join(f", {path.name}" for path in plots),
    )
    return groups, runs
