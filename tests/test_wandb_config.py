"""The ``wandb`` block is checked at start-up: a bad ``wandb.args.settings`` is a one-line error naming the key."""

import re

import pytest

from cli.arguments import config_parser
from cli.runner import run_script
from config.schema import TeacherConfig
from tests.conftest import teacher_config_dict, write_config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("wandb.args.settings=x", "wandb.args: settings must be a mapping .*, not 'x'"),
        ("wandb.args.settings.init_timeout=true", "wandb.args: settings.init_timeout must be a positive number .*True"),
        ("wandb.args.settings.init_timeout=0", "wandb.args: settings.init_timeout must be a positive number .*0"),
    ],
)
def test_bad_wandb_settings_are_one_line_errors_naming_the_key(tmp_path, image_data, capsys, override, message):
    config = write_config(tmp_path / "teacher.yaml", teacher_config_dict(image_data, tmp_path / "runs"))
    started = []
    argv = ["-c", str(config), override]
    assert run_script(TeacherConfig, lambda cfg, args: started.append(cfg), config_parser("t"), argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and not started
    assert re.search(message, line), line
