"""The prepared GPU check runs to completion in its tiny CPU mode and prints the table the docs describe."""

import subprocess

from benchmarks.gpu_check import COLUMNS, ROWS
from benchmarks.random_pipelines import FAMILIES
from tests.conftest import REPO, script_env


def test_gpu_check_prints_every_row_in_tiny_mode(tmp_path):
    result = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--tiny", "--num-workers", "0"],
        cwd=REPO,
        env=script_env(tmp_path) | {"OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    heading, _, after = result.stdout.partition("## GPU check on CPU")
    assert "| versatile_diffusion | defaults |" in heading  # each row is also printed as soon as it is measured
    table = [line for line in after.splitlines() if line.startswith("|")]
    assert table[0] == "| " + " | ".join(COLUMNS) + " |"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    assert rows[0][0] == "teacher (test_resnet)" and float(rows[0][5]) > 0
    assert [(row[0], row[1]) for row in rows[1:]] == [(b, label) for label, *_ in ROWS for b in FAMILIES]
    for row in rows[1:]:
        assert float(row[5]) > 0, row  # images/s measured, not skipped
        assert row[4] in ("off", "n/a (CPU)") and row[6] == "n/a"  # no GPU: no compile, no GPU memory
    defaults = {row[0]: row for row in rows[1:] if row[1] == "defaults"}
    assert defaults["sd_img2img"][3] == "default 1"  # strength 0.5 × 2 steps
    assert {row[2] for row in rows[1:] if row[1] != "defaults"} == {"2"}  # tiny mode: 2 images per call
