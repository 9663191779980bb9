"""run_pipeline.py and collect_results.py on tiny data: a two-seed grid, re-runs, agreement checks, tables."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import collect_results
import run_pipeline
from cli.arguments import config_parser, parse_arguments
from config.overrides import overrides_from_arguments
from experiments.aggregate import METRICS, Group, mark_superseded
from experiments.experiment_file import CommandLine, experiment_spec
from experiments.grid import grid_points
from experiments.result_tables import latex
from experiments.run_discovery import FoundRun
from experiments.step_configs import resolve_configs
from tests import wandb_records
from tests.conftest import REPO, make_image_folder, teacher_config_dict, write_config
from tests.test_resume import WhenAStateExists
from utils.errors import UserError

SWEEP_RUN_ID = "sweeprun01"  # what `wandb agent` would put in WANDB_RUN_ID


def experiment_files(root: Path, data: dict[str, Path]) -> Path:
    """Three tiny step configs and an experiment file naming them (output: root/experiments)."""
    teacher = teacher_config_dict(data, root / "unused")  # test_resnet, 16 px, 1 epoch, BadNets 3×3 at 50 %
    del teacher["training"]["save_path"]
    write_config(root / "teacher.yaml", teacher)
    write_config(
        root / "variations.yaml",  # seed and backdoor come from the teacher
        {
            "dataset": {"batch_size": 8, "num_workers": 0},
            "diffusion": {"backend": "classical", "height": 16, "width": 16},
            "device": "cpu",
        },
    )
    student = {key: teacher[key] for key in ("model", "training", "wandb")}
    write_config(root / "student.yaml", {**student, "dataset": {"root_test": str(data["test"])}})
    experiment = {"teacher": "teacher.yaml", "variations": "variations.yaml", "student": "student.yaml"}
    return write_config(root / "experiment.yaml", {**experiment, "output": str(root / "experiments")})


def settings(out: Path) -> dict[int, Path]:
    return {int(folder.name.rsplit("seed", 1)[1]): folder for folder in sorted(out.iterdir())}


def only_run(folder: Path) -> Path:
    (run_dir,) = [p for p in folder.iterdir() if (p / "summary.json").is_file()]
    return run_dir


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """Seeds 0 and 1 through run_pipeline.py with positional overrides; seed 0 under a (fake) W&B agent and
    with the clean student."""
    root = tmp_path_factory.mktemp("grid")
    data = {
        "train": make_image_folder(root / "train", per_class=6),
        "test": make_image_folder(root / "test", per_class=4),
    }
    experiment = experiment_files(root, data)
    with pytest.MonkeyPatch.context() as env:
        for name in ("CACHE", "CONFIG", "DATA"):
            env.setenv(f"WANDB_{name}_DIR", str(root / f"wandb_{name.lower()}"))
        env.setenv("WANDB_MODE", "offline")
        env.setenv("WANDB_SILENT", "true")
        env.chdir(root)
        env.setenv("WANDB_SWEEP_ID", "sweep01")
        env.setenv("WANDB_RUN_ID", SWEEP_RUN_ID)
        write_config(root / "sweep_params.yaml", {"seed": {"value": 0}})
        env.setenv("WANDB_SWEEP_PARAM_PATH", str(root / "sweep_params.yaml"))
        argv = ["-c", str(experiment), "--clean-student", "seed=0", "--teacher.wandb.enable_logging=true"]
        assert run_pipeline.main(argv) == 0
        for name in ("WANDB_SWEEP_ID", "WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH"):
            env.delenv(name)
        assert run_pipeline.main(["-c", str(experiment), "seed=1"]) == 0
    return {"root": root, "data": data, "experiment": experiment, "out": root / "experiments"}


def test_two_seed_grid_wires_each_step_into_the_next(grid):
    found = settings(grid["out"])
    assert sorted(found) == [0, 1]
    for seed, folder in found.items():
        teacher, student = only_run(folder / "teacher"), only_run(folder / "classical" / "student")
        teacher_cfg = yaml.safe_load((teacher / "config.yaml").read_text())
        variations_cfg = yaml.safe_load((folder / "classical" / "variations" / "config.yaml").read_text())
        student_cfg = yaml.safe_load((student / "config.yaml").read_text())
        assert teacher_cfg["seed"] == variations_cfg["seed"] == student_cfg["seed"] == seed
        assert variations_cfg["backdoor"] == teacher_cfg["backdoor"]  # passed on: the variations config has none
        assert student_cfg["backdoor"] == {**teacher_cfg["backdoor"], "poisoning_rate": 0.0}
        assert variations_cfg["dataset"]["root"] == teacher_cfg["dataset"]["root_train"]
        assert Path(student_cfg["distillation"]["teacher_model"]) == teacher
        assert Path(student_cfg["dataset"]["root_train"]) == folder / "classical" / "variations"
        # the same poisoned subset in the teacher and the generator (seeded by the passed-on seed)
        manifest = [
            json.loads(line)
            for line in (folder / "classical" / "variations" / "manifest.jsonl").read_text().splitlines()
        ]
        poisoned = sorted(r["index"] for r in manifest if r["poisoned"])
        assert poisoned == json.loads((teacher / "poison_indices.json").read_text())
        roles = [json.loads((run / "summary.json").read_text())["setting"]["role"] for run in (teacher, student)]
        assert roles == ["teacher", "student"]
        assert (folder / "classical" / "results.md").read_text().count("%") >= 7  # the teacher-vs-student table
    clean = only_run(found[0] / "clean_student")
    clean_cfg = yaml.safe_load((clean / "config.yaml").read_text())
    assert clean_cfg["dataset"]["root_train"] == str(grid["data"]["train"])
    assert json.loads((clean / "summary.json").read_text())["setting"]["role"] == "clean_student"
    assert not (found[1] / "clean_student").exists()
    poison = [json.loads((only_run(f / "teacher") / "poison_indices.json").read_text()) for f in found.values()]
    assert poison[0] != poison[1]  # the seed reached the poison plan


def test_steps_log_flat_keys_and_the_agent_run_gets_the_results(grid):
    folder = settings(grid["out"])[0]
    teacher = only_run(folder / "teacher")
    records = wandb_records.read_records(wandb_records.offline_run_file(teacher))
    config = wandb_records.config(records)
    assert {k: config[k] for k in ("attack", "poisoning_rate", "target_type", "role", "seed")} == {
        "attack": "PatchBackdoor",
        "poisoning_rate": 0.5,
        "target_type": "all_to_one",
        "role": "teacher",
        "seed": 0,
    }
    assert SWEEP_RUN_ID not in str(wandb_records.offline_run_file(teacher))  # the step did not take the agent's id
    sweep_file = wandb_records.offline_run_file(folder / "classical" / "sweep_wandb")
    assert SWEEP_RUN_ID in sweep_file.name
    summary = wandb_records.summary(wandb_records.read_records(sweep_file))
    student = json.loads((only_run(folder / "classical" / "student") / "summary.json").read_text())
    assert summary["student/attack_success_rate"] == student["student"]["attack_success_rate"]
    assert (
        summary["clean_student/der"]
        == json.loads((only_run(folder / "clean_student") / "summary.json").read_text())["der"]
    )


def files_and_mtimes(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and p.name != "results.md"}


def test_rerun_skips_complete_steps_and_redoes_incomplete_ones(grid, capsys):
    folder = settings(grid["out"])[1]
    argv = ["-c", str(grid["experiment"]), "--seed=1"]
    before = files_and_mtimes(folder)
    with pytest.MonkeyPatch.context() as env:
        env.chdir(grid["root"])
        assert run_pipeline.main(argv) == 0
        assert files_and_mtimes(folder) == before  # nothing written again, nothing new

        # a lost variation: the generator writes it again (the same bytes), the other steps stay as they are
        lost = next((folder / "classical" / "variations").rglob("*.png"))
        lost_bytes = lost.read_bytes()
        lost.unlink()
        assert run_pipeline.main(argv) == 0
        assert lost.read_bytes() == lost_bytes
        rewritten = {
            folder / "classical" / "variations" / name for name in ("config.yaml", "generation.json", "manifest.jsonl")
        }
        after = files_and_mtimes(folder)
        assert {path for path in after if after[path] != before[path]} == {lost, *rewritten}

        # an interrupted student (no summary.json yet) is not taken for done
        student = only_run(folder / "classical" / "student")
        (student / "summary.json").rename(student / "summary.bak")
        capsys.readouterr()
        assert run_pipeline.main([*argv, "--dry-run"]) == 0
        plan = capsys.readouterr().err
        (student / "summary.bak").rename(student / "summary.json")
    assert "teacher: complete, skipped" in plan and "variations: complete, skipped" in plan
    assert "student: would run" in plan
    assert files_and_mtimes(folder) == after  # a dry run writes nothing


def test_a_stopped_step_goes_on_from_its_last_epoch_when_the_command_is_run_again(small_experiment, capsys):
    """SIGTERM in the teacher's training: the line names the same command, which takes up the same run directory."""
    argv = ["-c", str(small_experiment), "teacher.training.num_epochs=12", "teacher.training.batch_size=6"]
    runs = small_experiment.parent / "experiments"
    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # a late signal must not end pytest itself
    try:
        with WhenAStateExists(runs, lambda: os.kill(os.getpid(), signal.SIGTERM), pattern="*/teacher/*"):
            code = run_pipeline.main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)
    err = capsys.readouterr().err
    assert code == 143, err
    (setting,) = runs.iterdir()
    (stopped,) = (setting / "teacher").iterdir()
    (line,) = [line for line in err.splitlines() if "resume with:" in line]
    assert line.endswith(shlex.join(argv)) and "--resume" not in line
    assert not (setting / "classical").exists()

    assert run_pipeline.main(argv) == 0
    assert "going on with the stopped run" in capsys.readouterr().err
    assert list((setting / "teacher").iterdir()) == [stopped]
    steps = [json.loads(line)["step"] for line in (stopped / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13)) and (stopped / "summary.json").is_file()
    assert only_run(setting / "classical" / "student") is not None


def test_variation_models_of_one_setting_share_its_teacher(small_experiment, tmp_path, capsys):
    """The teacher does not depend on the variation model: a second backend reuses it and adds its own student."""
    from benchmarks.random_pipelines import build_random_pipeline

    ddpm = tmp_path / "tiny_ddpm"
    build_random_pipeline("tiny", backend="ddpm_sdedit").save_pretrained(ddpm)  # 16×16, the data's size
    assert run_pipeline.main(["-c", str(small_experiment)]) == 0
    (setting,) = (tmp_path / "experiments").iterdir()
    teacher = only_run(setting / "teacher")
    stamp = (teacher / "summary.json").stat().st_mtime_ns
    capsys.readouterr()
    swap = f"variations.diffusion={{backend: ddpm_sdedit, model: {ddpm}, inference_steps: 2}}"
    assert run_pipeline.main(["-c", str(small_experiment), swap]) == 0
    assert "teacher: complete in" in capsys.readouterr().err
    assert only_run(setting / "teacher") == teacher and (teacher / "summary.json").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in setting.iterdir()) == ["classical", "ddpm_sdedit", "teacher"]
    for backend in ("classical", "ddpm_sdedit"):
        student = yaml.safe_load((only_run(setting / backend / "student") / "config.yaml").read_text())
        assert student["dataset"]["root_train"] == str(setting / backend / "variations")
        assert Path(student["distillation"]["teacher_model"]) == teacher
        assert (setting / backend / "results.md").is_file()


def expected_groups(out: Path) -> dict[str, dict[str, list[float]]]:
    """role → metric → values, read straight from the complete runs' summary.json files."""
    values: dict[str, dict[str, list[float]]] = {}
    for path in sorted(out.glob("*/**/summary.json")):
        summary = json.loads(path.read_text())
        role = summary["setting"]["role"]
        scores = summary if role == "teacher" else summary["student"]
        for metric in ("clean_accuracy", "attack_success_rate", "robust_accuracy"):
            values.setdefault(role, {}).setdefault(metric, []).append(scores[metric])
        if role != "teacher":
            values[role].setdefault("der", []).append(summary["der"])
    return values


def test_collect_results_means_and_stds_match_the_summaries(grid, tmp_path):
    stray = tmp_path / "elsewhere" / "teacher_run"  # an interrupted run: listed, not averaged
    stray.mkdir(parents=True)
    config = yaml.safe_load((only_run(settings(grid["out"])[0] / "teacher") / "config.yaml").read_text())
    write_config(stray / "config.yaml", config)
    out = tmp_path / "tables"
    assert collect_results.main([str(grid["out"]), str(tmp_path / "elsewhere"), "--out", str(out)]) == 0
    with open(out / "results.csv") as handle:
        rows = {row["role"]: row for row in csv.DictReader(handle)}
    expected = expected_groups(grid["out"])
    assert set(rows) == set(expected) == {"teacher", "student", "clean_student"}
    assert (rows["teacher"]["seeds"], rows["student"]["seeds"], rows["clean_student"]["seeds"]) == ("0 1", "0 1", "0")
    for role, metrics in expected.items():
        assert rows[role]["variation_backend"] == ("classical" if role == "student" else "")
        for metric, values in metrics.items():
            assert rows[role]["n"] == str(len(values))
            assert float(rows[role][f"{metric}_mean"]) == pytest.approx(statistics.fmean(values), abs=1e-12)
            std = rows[role][f"{metric}_std"]
            assert float(std) == pytest.approx(statistics.stdev(values), abs=1e-12) if len(values) > 1 else std == ""
    with open(out / "runs.csv") as handle:
        runs = list(csv.DictReader(handle))
    assert [r["status"] for r in runs].count("counted") == 5
    assert any(r["run_dir"].endswith("teacher_run") and r["status"] == "not counted" for r in runs)
    text = (out / "results.md").read_text()
    assert "## Runs not counted" in text and "teacher_run" in text and "0/1 epochs logged" in text
    teacher_ca = expected["teacher"]["clean_accuracy"]
    cell = f"{100 * statistics.fmean(teacher_ca):.1f} ± {100 * statistics.stdev(teacher_ca):.1f}"
    assert cell in text
    tex = (out / "results.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex and "clean\\_student" in tex
    from PIL import Image

    with Image.open(out / "teacher_vs_student.png") as plot:
        assert plot.size[0] > 500 and plot.getextrema() != ((255, 255),) * 3


def test_collect_results_without_runs_exits_2(tmp_path, capsys):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert collect_results.main([str(tmp_path / "empty"), "--out", str(tmp_path / "t")]) == 2
    assert "no teacher or student run directories" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
    assert collect_results.main([str(tmp_path / "missing")]) == 2


@pytest.fixture
def small_experiment(tmp_path, image_data) -> Path:
    return experiment_files(tmp_path, image_data)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("variations.seed=3", r"disagree on seed: teacher \(.*teacher.yaml\) has 0, variations \(.*\) has 3"),
        (
            "student.backdoor={target_idx: 1, PatchBackdoor: {trigger_size: 3}}",
            "disagree on backdoor.target_idx: teacher .* has 0, student .* has 1",
        ),
        ("variations.dataset.image_size=32", "disagree on dataset.image_size: teacher .* has 16, variations .* has 32"),
        ("student.dataset.root_test=OTHER", r"disagree on classes .*\['cat', 'dog', 'frog'\].*\['cat', 'dog'\]"),
        ("foo.bar=1", "no step's config has foo.bar"),
    ],
)
def test_configs_that_disagree_stop_before_anything_runs(small_experiment, tmp_path, override, message, capsys):
    other = make_image_folder(tmp_path / "other", classes=("cat", "dog"), per_class=1)
    argv = ["-c", str(small_experiment), override.replace("OTHER", str(other))]
    assert run_pipeline.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert re.search(message, err[0]), err[0]
    assert not (tmp_path / "experiments").exists()


def test_shared_overrides_reach_every_step_and_the_teacher_block_is_passed_on(small_experiment):
    spec = experiment_spec(
        CommandLine(small_experiment, overrides=["backdoor.poisoning_rate=0.25", "training.num_epochs=3"])
    )
    configs = resolve_configs(spec)
    assert configs.teacher.backdoor.poisoning_rate == configs.variations.backdoor.poisoning_rate == 0.25
    assert configs.student.backdoor.poisoning_rate == 0.0  # a student's block only builds the triggered test set
    assert configs.teacher.training.num_epochs == configs.student.training.num_epochs == 3
    assert configs.folder.name == "imagefolder-PatchBackdoor-rate0.25-all_to_one-seed0"
    assert configs.variant == configs.folder / "classical"
    spec = experiment_spec(CommandLine(small_experiment, overrides=["teacher.training.num_epochs=2"]))
    configs = resolve_configs(spec)
    assert (configs.teacher.training.num_epochs, configs.student.training.num_epochs) == (2, 1)


def test_overrides_the_way_sweep_tools_pass_them():
    assert overrides_from_arguments(["seed=3", "--training.num_epochs=2", "--backdoor={a: 1}"]) == [
        "seed=3",
        "training.num_epochs=2",
        "backdoor={a: 1}",
    ]
    args = parse_arguments(config_parser("t"), ["-c", "x.yaml", "seed=1", "--set", "a=2", "--wandb.args.name=n"])
    assert args.config == "x.yaml" and args.overrides == ["seed=1", "wandb.args.name=n", "a=2"]
    # no abbreviations: --se=1 overrides a key `se` (and fails validation later), it is not --set
    assert parse_arguments(config_parser("t"), ["-c", "x.yaml", "--se=1"]).overrides == ["se=1"]
    for stray in ("--verbose", "oops"):
        with pytest.raises(UserError, match="unrecognized argument"):
            overrides_from_arguments([stray])
        with pytest.raises(SystemExit) as stopped:
            parse_arguments(config_parser("t"), ["-c", "x.yaml", stray])
        assert stopped.value.code == 2


def test_sweep_grid_and_slurm_script_run_the_same_points(tmp_path):
    sweep = REPO / "configs" / "sweeps" / "demo_grid.yaml"
    points = grid_points(sweep)
    assert len(points) == 12 and len({tuple(p) for p in points}) == 12
    assert ["--teacher=configs/demo/teacher_blended.yaml", "--backdoor.poisoning_rate=0.05", "--seed=1"] in points
    shim = tmp_path / "python"  # prints what the Slurm task would run instead of running the pipeline
    shim.write_text(
        '#!/usr/bin/env bash\nif [ "$1" = run_pipeline.py ]; then printf "%s\\n" "$@"; '
        f'else exec {sys.executable} "$@"; fi\n'
    )
    shim.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "PYTHON": str(shim), "SLURM_ARRAY_TASK_ID": "7"}
    result = subprocess.run(
        ["bash", "configs/sweeps/slurm_grid.sh", str(sweep)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    words = result.stdout.splitlines()[1:]
    assert words == ["run_pipeline.py", "-c", "configs/demo/experiment.yaml", "--clean-student", *points[7]]
    args = parse_arguments(run_pipeline.parser(), words[1:])
    assert args.teacher == Path(points[7][0].split("=", 1)[1]) and sorted(args.overrides) == sorted(
        p.removeprefix("--") for p in points[7][1:]
    )


def test_readme_pipeline_and_collect_commands_run(grid, tmp_path, capsys, monkeypatch):
    """The README's run_pipeline.py commands (as dry runs on tiny data) and collect_results.py commands."""
    from tests.test_readme import bash_commands

    monkeypatch.chdir(REPO)
    pipelines = [shlex.split(c)[2:] for c in bash_commands() if c.startswith("python run_pipeline.py")]
    collects = [shlex.split(c)[2:] for c in bash_commands() if c.startswith("python collect_results.py")]
    assert len(pipelines) == 9 and len(collects) == 2
    data = grid["data"]
    tiny = [f"dataset.root_train={data['train']}", f"dataset.root_test={data['test']}", "model.num_classes=3"]
    for words in pipelines:
        assert run_pipeline.main([*words, *tiny, "--dry-run", "--out", str(tmp_path / "exp")]) == 0, words
        assert "the configs agree" in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()
    for words in collects:
        out = tmp_path / words[words.index("--out") + 1]
        assert collect_results.main([str(grid["out"]), *words[1:], "--out", str(out)]) == 0, words
        assert (out / "results.md").is_file() and (out / "teacher_vs_student.png").is_file()


def blended_teacher(experiment: Path) -> Path:
    """The experiment's teacher under the Blended attack (what the shipped grids' ``teacher`` parameter swaps in)."""
    teacher = yaml.safe_load((experiment.parent / "teacher.yaml").read_text())
    teacher["backdoor"] = {**teacher["backdoor"], "PatchBackdoor": None, "BlendedBackdoor": {"blend_ratio": 0.2}}
    return write_config(experiment.parent / "teacher_blended.yaml", teacher)


@pytest.mark.parametrize("hyphens", [False, True], ids=["args_no_hyphens", "args"])
def test_a_grid_point_names_the_scripts_options_in_either_sweep_form(small_experiment, tmp_path, capsys, hyphens):
    """W&B passes every parameter the same way: teacher=..., output=..., clean_student=true are run_pipeline.py's
    options (``_`` for ``-``), the other words config overrides."""
    out = tmp_path / "sweep_out"
    parameters = {
        "teacher": {"values": [str(small_experiment.parent / "teacher.yaml"), str(blended_teacher(small_experiment))]},
        "seed": {"values": [0, 3]},
        "output": {"value": str(out)},
        "clean_student": {"value": True},
    }
    point = grid_points(write_config(tmp_path / "sweep.yaml", {"method": "grid", "parameters": parameters}))[3]
    words = point if hyphens else [word.removeprefix("--") for word in point]
    args = parse_arguments(run_pipeline.parser(), ["-c", str(small_experiment), *words])
    assert (args.teacher.name, args.out, args.clean_student, args.overrides) == (
        "teacher_blended.yaml",
        out,
        True,
        ["seed=3"],
    )
    capsys.readouterr()
    assert run_pipeline.main(["-c", str(small_experiment), *words, "--dry-run"]) == 0
    plan = capsys.readouterr().err
    assert f"setting {out / 'imagefolder-BlendedBackdoor-rate0.5-all_to_one-seed3'}: the configs agree" in plan
    assert "clean_student: would run" in plan and not out.exists()
    assert not parse_arguments(run_pipeline.parser(), ["clean_student=false"]).clean_student
    with pytest.raises(SystemExit) as stopped:
        parse_arguments(run_pipeline.parser(), ["clean_student=maybe"])
    assert stopped.value.code == 2
    assert "clean_student" in capsys.readouterr().err


def dry_run_plan(grid, capsys, *words) -> str:
    capsys.readouterr()
    assert run_pipeline.main(["-c", str(grid["experiment"]), "--clean-student", "seed=0", *words, "--dry-run"]) == 0
    return capsys.readouterr().err


def assert_every_step_complete(plan: str) -> None:
    for step in ("teacher", "variations", "student", "clean_student"):
        assert f"  {step}: complete, skipped" in plan, plan


def test_dry_run_after_a_complete_run_says_every_step_is_complete(grid, capsys):
    """The student's model.num_classes is filled in before the comparison, as the run itself fills it in."""
    assert_every_step_complete(dry_run_plan(grid, capsys))


@pytest.mark.parametrize("override", ["training.keep_checkpoints=3", "training.dataloader_num_workers=1"])
def test_keys_that_only_say_how_to_run_do_not_make_a_finished_run_retrain(grid, capsys, override):
    assert_every_step_complete(dry_run_plan(grid, capsys, override))


def test_configs_with_different_attacks_name_both_attacks(small_experiment, capsys):
    blended = "variations.backdoor={target_idx: 0, poisoning_rate: 0.5, BlendedBackdoor: {blend_ratio: 0.2}}"
    assert run_pipeline.main(["-c", str(small_experiment), blended]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert re.search(
        r"disagree on attack: teacher \(.*\) has 'PatchBackdoor', variations \(.*\) has 'BlendedBackdoor'", line
    ), line


def found_run(root: Path, name: str, mtime: int, **keys) -> FoundRun:
    run_dir = root / name
    run_dir.mkdir()
    (run_dir / "summary.json").write_text("{}")
    os.utime(run_dir / "summary.json", (mtime, mtime))
    setting = {"dataset_name": "shapes", "architecture": "resnet18", "attack": "PatchBackdoor", "poisoning_rate": 0.1}
    setting |= {"target_type": "all_to_one", "variation_backend": None, "seed": 0, "role": "teacher"}
    return FoundRun(run_dir, {}, {}, setting | keys)


def test_only_runs_of_the_same_full_setting_and_seed_supersede_each_other(tmp_path):
    """--group-by attack,role puts both rates in one group, but two rates are two settings, not a re-run."""
    runs = [
        found_run(tmp_path, "rate01", 1, poisoning_rate=0.1),
        found_run(tmp_path, "rate02", 2, poisoning_rate=0.2),
        found_run(tmp_path, "rate01_again", 3, poisoning_rate=0.1),
    ]
    mark_superseded(runs, ("attack", "role"))
    assert [run.complete for run in runs] == [False, True, True]
    assert runs[0].note == f"superseded by {runs[2].run_dir} (same setting and seed)"


def test_a_misspelt_group_by_key_lists_the_valid_keys(grid, tmp_path, capsys):
    assert collect_results.main([str(grid["out"]), "--out", str(tmp_path / "t"), "--group-by", "atack,role"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "atack" in line and "poisoning_rate" in line and "training." in line, line
    assert not (tmp_path / "t").exists()
    assert (
        collect_results.main([str(grid["out"]), "--out", str(tmp_path / "t"), "--group-by", "training.num_epochs,role"])
        == 0
    )


def test_latex_escapes_every_special_character_once():
    empty = {metric: None for metric in METRICS}
    groups = [Group({"attack": name, "role": "teacher"}, [], empty) for name in ("plain", r"a\b_c%d&e#f$g{h}i~j^k")]
    tex = latex(groups, ("attack", "role"))
    assert r"a\textbackslash{}b\_c\%d\&e\#f\$g\{h\}i\textasciitilde{}j\textasciicircum{}k & teacher" in tex


def test_plot_titles_claim_a_spread_over_seeds_only_where_there_is_one(tmp_path):
    """With one seed per setting the title said "mean ± std over seeds" above bars without error bars."""
    from experiments.aggregate import Stat
    from experiments.result_plots import bar_chart, rate_chart

    def groups(*counts: int) -> list[Group]:
        made = []
        for role, n in zip(("teacher", "student"), counts, strict=True):
            stat = Stat(0.5, 0.1 if n > 1 else None, n)
            keys = {"role": role, "attack": "PatchBackdoor", "poisoning_rate": 0.1}
            made.append(Group(keys, [], {"clean_accuracy": stat, "attack_success_rate": stat}))
        return made

    title = bar_chart(groups(1, 1), [], tmp_path / "a.png").get_suptitle()
    assert title == "teacher vs. students: one run (seed) each, no error bars" and "±" not in title
    assert "±" not in rate_chart(groups(1, 1), ["poisoning_rate"], tmp_path / "b.png").get_suptitle()
    assert bar_chart(groups(3, 3), [], tmp_path / "c.png").get_suptitle().endswith("mean ± std over 3 seeds")
    mixed = bar_chart(groups(1, 2), [], tmp_path / "d.png").get_suptitle()
    assert mixed.endswith("mean ± std over 1–2 seeds (no error bar where a single seed)")
    assert (tmp_path / "a.png").stat().st_size > 0


def test_a_finished_run_whose_summary_was_damaged_is_named_not_a_traceback(grid, tmp_path, capsys, monkeypatch):
    """Re-running a finished setting reads each step's summary.json: a damaged one is one line, exit 2."""
    out = tmp_path / "experiments"
    shutil.copytree(grid["out"], out, symlinks=True)
    (setting,) = [folder for seed, folder in settings(out).items() if seed == 1]
    summary = only_run(setting / "teacher") / "summary.json"
    summary.write_bytes(b"\xff{not json")
    monkeypatch.chdir(grid["root"])
    capsys.readouterr()
    assert run_pipeline.main(["-c", str(grid["experiment"]), "seed=1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: teacher: ") and str(summary.parent) in err[-1] and "not UTF-8" in err[-1], err
    assert not [line for line in err if "Traceback" in line]


def test_teacher_only_trains_the_teacher_and_the_whole_run_then_reuses_it(small_experiment, tmp_path, capsys):
    assert run_pipeline.main(["-c", str(small_experiment), "--teacher-only"]) == 0
    (setting,) = (tmp_path / "experiments").iterdir()
    assert sorted(p.name for p in setting.iterdir()) == ["teacher"]  # no variations, no student
    teacher = only_run(setting / "teacher")
    capsys.readouterr()
    assert run_pipeline.main(["-c", str(small_experiment)]) == 0
    assert "teacher: complete in" in capsys.readouterr().err
    assert only_run(setting / "teacher") == teacher and only_run(setting / "classical" / "student") is not None
