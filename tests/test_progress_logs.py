"""Progress in a log file: plain lines, no bar frames (carriage returns); bars stay on terminals."""

import re
import subprocess
import sys

import pytest
from tqdm import tqdm

from tests.conftest import REPO, script_env, teacher_config_dict, write_config
from utils import progress as progress_module
from utils.progress import ProgressLines, progress


def test_a_training_run_logged_to_a_file_has_one_plain_line_per_epoch(image_data, tmp_path):
    """``train_teacher.py ... > log.txt 2>&1``, as under Slurm or nohup: bytes as written (no newline translation)."""
    config = teacher_config_dict(image_data, tmp_path / "runs", training={"num_epochs": 3, "batch_size": 4})
    with (tmp_path / "log.txt").open("wb") as log:
        argv = [sys.executable, str(REPO / "train_teacher.py"), "-c", str(write_config(tmp_path / "t.yaml", config))]
        done = subprocess.run(
            argv, cwd=REPO, env=script_env(tmp_path), stdout=log, stderr=subprocess.STDOUT, timeout=600
        )
    text = (tmp_path / "log.txt").read_bytes().decode()
    assert done.returncode == 0, text[-2000:]
    assert "\r" not in text
    epochs = [line for line in text.splitlines() if re.search(r"\bepoch \d+/3: loss", line)]
    assert len(epochs) == 3 and all(line.startswith("epoch ") for line in epochs)


def test_long_work_off_a_terminal_prints_a_line_every_tenth(monkeypatch, capsys):
    monkeypatch.setattr(progress_module, "LINE_MIN_SECONDS", 0.0)
    clock = iter(range(1000))
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: float(next(clock)))
    for _ in progress(range(50), desc="variations", unit="img"):
        pass
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10 and "\r" not in "".join(lines)
    assert lines[0].startswith("variations: 5/50 img (10 %), ") and " img/s, " in lines[0] and "left" in lines[0]
    assert lines[-1].startswith("variations: 50/50 img (100 %)") and "0:00 left" in lines[-1]


def test_quick_work_and_epochs_stay_quiet_off_a_terminal(capsys):
    assert isinstance(progress(range(3), desc="x"), ProgressLines)
    list(progress(range(100), desc="x"))  # well under LINE_MIN_SECONDS
    list(progress(range(100), desc="epoch 1", lines=False))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("show", [True, False])
def test_a_terminal_gets_a_bar(monkeypatch, show):
    monkeypatch.setattr(progress_module, "on_terminal", lambda: True)
    bar = progress(range(3), desc="x", show=show)
    assert isinstance(bar, tqdm) and bar.disable is not show
    bar.close()


def test_every_progress_display_goes_through_utils_progress():
    """A bare ``tqdm(...)`` writes bar frames into log files (found in detection, fixed): only utils/progress.py
    may make one."""
    bare = re.compile(r"^\s*(from tqdm import tqdm|import tqdm)\b|\btqdm\(", re.MULTILINE)
    offenders = [
        str(path.relative_to(REPO))
        for path in REPO.rglob("*.py")
        if not {".venv", "tests", "site"} & set(path.relative_to(REPO).parts)
        and path != REPO / "utils" / "progress.py"
        and bare.search(path.read_text())
    ]
    assert offenders == []
