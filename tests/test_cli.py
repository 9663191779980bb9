"""The scripts' command line: --help answers before torch loads, every --help example runs, --print-config."""

import shlex
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import REPO, script_env

SCRIPTS = (
    "train_teacher.py",
    "train_student.py",
    "generate_variations.py",
    "run_pipeline.py",
    "collect_results.py",
    "screen_triggers.py",
    "detect_poison.py",
)
CONFIG_SCRIPTS = ("train_teacher.py", "train_student.py", "generate_variations.py")


def run(tmp_path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *argv], cwd=REPO, env=script_env(tmp_path), capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_answers_without_loading_torch(script, tmp_path):
    started = time.perf_counter()
    result = run(tmp_path, "-X", "importtime", script, "--help")
    seconds = time.perf_counter() - started
    assert result.returncode == 0 and "usage:" in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")}
    assert "torch" not in imported and "diffusers" not in imported, "heavy imports before --help"
    assert seconds < 5, seconds  # about 0.1-0.5 s on an idle 2-core machine; the bound allows for a loaded one


def help_examples(tmp_path, script: str) -> list[str]:
    text = run(tmp_path, script, "--help").stdout
    return [line.strip() for line in text.split("examples:\n", 1)[1].splitlines() if line.strip()]


@pytest.mark.parametrize("script", CONFIG_SCRIPTS)
def test_every_help_example_is_accepted(script, tmp_path):
    """Each example of --help, with --print-config (no data needed): the config it names resolves."""
    examples = help_examples(tmp_path, script)
    assert examples and all(script in example for example in examples)
    for example in examples:
        words = shlex.split(example)
        words = words[words.index(script) :]  # torchrun's own options aside
        if "--print-config" not in words:
            words.append("--print-config")
        result = run(tmp_path, *words)
        assert result.returncode == 0, f"{example}\n{result.stderr}"
        config = yaml.safe_load(result.stdout)
        assert isinstance(config, dict) and "seed" in config, example


def test_print_config_prints_the_resolved_config_with_overrides_and_writes_nothing(tmp_path):
    result = run(
        tmp_path,
        "train_teacher.py",
        "-c",
        "configs/cifar10/teacher_badnets.yaml",
        "--set",
        "training.num_epochs=9",
        f"training.save_path={tmp_path / 'runs'}",
        "--print-config",
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["training"]["num_epochs"] == 9 and config["model"]["architecture"] == "resnet20"
    assert config["backdoor"]["PatchBackdoor"]["trigger_size"] == 3
    assert config["optimizer"]  # defaults filled in: what a run directory's config.yaml would hold
    assert not (tmp_path / "runs").exists()
    bad = run(tmp_path, "train_teacher.py", "-c", "configs/cifar10/teacher_badnets.yaml", "seed=-1", "--print-config")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --set 'seed=-1': seed:")


def test_override_examples_in_help_name_keys_the_script_has(tmp_path):
    """generate_variations.py --help no longer suggests a training key it refuses."""
    text = " ".join(run(tmp_path, "generate_variations.py", "--help").stdout.split())
    assert "training.num_epochs" not in text and "--set diffusion.inference_steps=25 seed=7" in text
