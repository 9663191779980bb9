"""What makes two runs the same setting: collect_results.py never mixes two experiments, run_pipeline.py gives a
changed setting (or variation config) its own folder, and a student made by hand agrees with its teacher and
variations. Also collect_results.py on bad summaries and symlinked run directories."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import pytest
import yaml

import collect_results
import run_pipeline
from cli.runner import run_training_script
from config.schema import StudentConfig, TeacherConfig, VariationConfig
from datasets.setting_keys import identity_digest
from experiments.setting_folders import difference_name, place, variations_identities
from models.checkpoint import CHECKPOINT_NAME
from tests.conftest import teacher_config_dict, write_config
from tests.test_experiments import experiment_files, only_run
from training.roles import StudentRole, TeacherRole
from variations.run import RunOptions, run_variations

# ---------------------------------------------------------------- collect_results.py on hand-made run folders


def fake_run(folder: Path, summary: bytes | str | None, mtime: int = 1, **config) -> Path:
    """A complete-looking teacher run directory: config.yaml, the checkpoint file and ``summary`` as given."""
    base = {
        "seed": 0,
        "model": {"architecture": "test_resnet"},
        "dataset": {"name": "shapes", "root_train": "/data/train", "root_test": "/data/test", "image_size": 16},
        "backdoor": {"target_idx": 0, "poisoning_rate": 0.1, "PatchBackdoor": {"trigger_size": 3}},
        "training": {"num_epochs": 1, "save_path": str(folder.parent)},
    }
    for key, value in config.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    write_config(folder / "config.yaml", base)
    (folder / CHECKPOINT_NAME).write_bytes(b"")
    if summary is not None:
        path = folder / "summary.json"
        path.write_bytes(summary if isinstance(summary, bytes) else summary.encode())
        os.utime(path, (mtime, mtime))
    return folder


def good_summary(accuracy: float = 0.9) -> str:
    return json.dumps({"clean_accuracy": accuracy, "attack_success_rate": 0.5, "robust_accuracy": 0.4})


def runs_table(out: Path) -> list[dict]:
    with (out / "runs.csv").open() as handle:
        return list(csv.DictReader(handle))


def results_table(out: Path) -> list[dict]:
    with (out / "results.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(
    ("summary", "reason"),
    [
        ('{"clean_accuracy": "abc", "attack_success_rate": 0.1}', "clean_accuracy"),
        ("[1, 2, 3]", "not a JSON object"),
        (b'{"clean_accuracy": 0.9, "x": "\xff\xfe"}', "UTF-8"),
        ('{"clean_accuracy": Infinity, "attack_success_rate": 0.1}', "clean_accuracy"),
        ('{"clean_accuracy": 0.5, "attack_success_rate": -0.2}', "attack_success_rate"),
        ("{not json", "summary.json"),
    ],
)
def test_one_bad_summary_is_listed_as_not_counted_and_the_rest_are_collected(tmp_path, capsys, summary, reason):
    runs = tmp_path / "runs"
    fake_run(runs / "good", good_summary())
    fake_run(runs / "bad", summary, seed=1)
    assert collect_results.main([str(runs), "--out", str(tmp_path / "t")]) == 0, capsys.readouterr().err
    rows = {Path(row["run_dir"]).name: row for row in runs_table(tmp_path / "t")}
    assert rows["good"]["status"] == "counted"
    assert rows["bad"]["status"] == "not counted" and reason in rows["bad"]["note"], rows["bad"]
    (group,) = results_table(tmp_path / "t")
    assert group["n"] == "1" and float(group["clean_accuracy_mean"]) == 0.9
    assert "Runs not counted" in (tmp_path / "t" / "results.md").read_text()


def test_symlinked_run_directories_are_followed_once_and_link_cycles_end(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    fake_run(elsewhere / "a", good_summary(0.8))
    fake_run(elsewhere / "b", good_summary(0.6), seed=1)
    links = tmp_path / "links"
    links.mkdir()
    (links / "a").symlink_to(elsewhere / "a")
    (links / "b").symlink_to(elsewhere / "b")
    assert collect_results.main([str(links), "--out", str(tmp_path / "t1")]) == 0, capsys.readouterr().err
    (group,) = results_table(tmp_path / "t1")
    assert group["n"] == "2"

    mixed = tmp_path / "mixed"
    fake_run(mixed / "real", good_summary(0.8))
    (mixed / "linked").symlink_to(elsewhere / "b")
    (mixed / "again").symlink_to(mixed / "real")  # the same run twice: counted once
    (mixed / "loop").symlink_to(mixed)  # a cycle: must not be walked forever
    (mixed / "nested").mkdir()
    (mixed / "nested" / "up").symlink_to(mixed)
    assert collect_results.main([str(mixed), "--out", str(tmp_path / "t2")]) == 0, capsys.readouterr().err
    (group,) = results_table(tmp_path / "t2")
    assert group["n"] == "2" and group["seeds"] == "0 1"


def test_a_different_experiment_never_supersedes_another(tmp_path, capsys):
    """A clean-label teacher and a dirty-label one, same default keys and seed: two rows, labelled by the key."""
    runs = tmp_path / "runs"
    fake_run(runs / "dirty", good_summary(0.9), mtime=1)
    fake_run(runs / "clean_label", good_summary(0.7), mtime=2, backdoor={"clean_label": True})
    fake_run(runs / "trigger5", good_summary(0.5), mtime=3, backdoor={"PatchBackdoor": {"trigger_size": 5}})
    fake_run(runs / "other_data", good_summary(0.4), mtime=4, dataset={"root_train": "/data/other"})
    fake_run(runs / "dirty_again", good_summary(0.8), mtime=5)  # the same setting and seed: a re-run
    assert collect_results.main([str(runs), "--out", str(tmp_path / "t")]) == 0, capsys.readouterr().err
    rows = {Path(row["run_dir"]).name: row for row in runs_table(tmp_path / "t")}
    assert [name for name, row in rows.items() if row["status"] != "counted"] == ["dirty"]
    assert "superseded by" in rows["dirty"]["note"] and "dirty_again" in rows["dirty"]["note"]
    groups = results_table(tmp_path / "t")
    assert sorted(float(g["clean_accuracy_mean"]) for g in groups) == [0.4, 0.5, 0.7, 0.8]
    md = (tmp_path / "t" / "results.md").read_text()
    for key in ("backdoor.clean_label", "backdoor.PatchBackdoor.trigger_size", "dataset.root_train"):
        assert key in md, md


# ---------------------------------------------------------------- run_pipeline.py: changed settings and variants


@pytest.fixture
def experiment(tmp_path, image_data) -> Path:
    return experiment_files(tmp_path, image_data)


def plan_of(experiment: Path, capsys, *words: str) -> str:
    capsys.readouterr()
    assert run_pipeline.main(["-c", str(experiment), *words, "--dry-run"]) == 0
    return capsys.readouterr().err


def test_a_changed_trigger_is_its_own_setting_and_the_dry_run_says_so(experiment, tmp_path, capsys):
    out = tmp_path / "experiments"
    assert run_pipeline.main(["-c", str(experiment)]) == 0
    (first,) = out.iterdir()
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    changed = "backdoor.PatchBackdoor.trigger_size=5"
    plan = plan_of(experiment, capsys, changed)
    assert f"setting {first}:" not in plan, plan
    for step in ("teacher", "variations", "student"):
        assert f"  {step}: would run" in plan, plan
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # a dry run writes nothing

    assert run_pipeline.main(["-c", str(experiment), changed]) == 0, capsys.readouterr().err
    second = next(p for p in out.iterdir() if p != first)
    assert second.name.startswith(first.name) and "trigger_size5" in second.name
    for setting, size in ((first, 3), (second, 5)):
        teacher = only_run(setting / "teacher")  # one teacher per setting folder
        assert (
            yaml.safe_load((teacher / "config.yaml").read_text())["backdoor"]["PatchBackdoor"]["trigger_size"] == size
        )
        student = yaml.safe_load((only_run(setting / "classical" / "student") / "config.yaml").read_text())
        assert Path(student["distillation"]["teacher_model"]) == teacher
    plan = plan_of(experiment, capsys, changed)
    assert f"setting {second}:" in plan and "  teacher: complete, skipped" in plan and "would run" not in plan
    plan = plan_of(experiment, capsys)
    assert f"setting {first}:" in plan and "would run" not in plan

    assert collect_results.main([str(out), "--out", str(tmp_path / "t")]) == 0
    rows = runs_table(tmp_path / "t")
    assert all(row["status"] == "counted" for row in rows), rows
    groups = results_table(tmp_path / "t")
    assert len(groups) == 4  # two teachers, two students: nothing averaged across trigger sizes
    teachers = sorted(g["backdoor.PatchBackdoor.trigger_size"] for g in groups if g["role"] == "teacher")
    assert teachers == ["3", "5"]
    assert [g["role"] for g in groups] == ["teacher", "student"] * 2  # each setting: its teacher, then students
    assert not any(key.startswith(("teacher.", "variations.")) for key in groups[0])  # the student's own key says it

    # A folder an older version made: both teachers in one teacher/ folder. Each config still finds its run.
    legacy = only_run(second / "teacher")
    legacy.rename(first / "teacher" / (legacy.name + "_5"))
    for folder in (second / "teacher", second / "classical"):
        folder.rename(tmp_path / f"moved_{folder.name}")
    second.rmdir()
    plan = plan_of(experiment, capsys, changed)
    assert f"setting {first}:" in plan and "  teacher: complete, skipped" in plan, plan


def test_two_strengths_in_one_setting_one_teacher_two_students_two_rows(experiment, tmp_path, capsys):
    from benchmarks.random_pipelines import build_random_pipeline

    ddpm = tmp_path / "tiny_ddpm"
    build_random_pipeline("tiny", backend="ddpm_sdedit").save_pretrained(ddpm)
    out = tmp_path / "experiments"
    sdedit = f"variations.diffusion={{backend: ddpm_sdedit, model: {ddpm}, inference_steps: 4, strength: STRENGTH}}"
    assert run_pipeline.main(["-c", str(experiment), sdedit.replace("STRENGTH", "0.5")]) == 0
    (setting,) = out.iterdir()
    teacher = only_run(setting / "teacher")
    plan = plan_of(experiment, capsys, sdedit.replace("STRENGTH", "0.25"))
    assert "  teacher: complete, skipped" in plan
    assert "  variations: would run" in plan and "  student: would run" in plan, plan
    assert run_pipeline.main(["-c", str(experiment), sdedit.replace("STRENGTH", "0.25")]) == 0
    assert only_run(setting / "teacher") == teacher  # reused
    variants = sorted(p.name for p in setting.iterdir() if p.name != "teacher")
    assert variants == ["ddpm_sdedit", "ddpm_sdedit-strength0.25"], variants
    strengths = []
    for name in variants:
        saved = yaml.safe_load((setting / name / "variations" / "config.yaml").read_text())
        strengths.append(saved["diffusion"]["strength"])
        student = yaml.safe_load((only_run(setting / name / "student") / "config.yaml").read_text())
        assert Path(student["distillation"]["teacher_model"]) == teacher
    assert strengths == [0.5, 0.25]
    for strength in ("0.5", "0.25"):
        plan = plan_of(experiment, capsys, sdedit.replace("STRENGTH", strength))
        assert "would run" not in plan, plan

    assert collect_results.main([str(out), "--out", str(tmp_path / "t")]) == 0
    groups = results_table(tmp_path / "t")
    students = [g for g in groups if g["role"] == "student"]
    assert len(groups) == 3 and len(students) == 2 and groups[0]["role"] == "teacher"
    assert sorted(g["variations.diffusion.strength"] for g in students) == ["0.25", "0.5"]
    assert all(g["n"] == "1" for g in groups)


def test_a_folder_name_says_what_differs_or_is_a_hash():
    old = {"diffusion": {"backend": "ddpm_sdedit", "model": "/m/a", "strength": 0.5}, "seed": 0}
    assert difference_name(old, {**old, "diffusion": {**old["diffusion"], "strength": 0.25}}) == "strength0.25"
    assert difference_name(old, {**old, "seed": 3, "flag": True}) == "flagtrue-seed3"
    other_model = {**old, "diffusion": {**old["diffusion"], "model": "/m/b"}}  # a path: not a plain word
    assert re.fullmatch("[0-9a-f]{8}", difference_name(old, other_model))
    many = {**old, **{f"key_number_{i}": i for i in range(6)}}  # too long to read
    assert difference_name(old, many) == identity_digest(many)


def test_a_folder_whose_config_was_deleted_is_not_given_to_another_config(tmp_path):
    """Variations deleted to save space, the student kept: its folder is not free, for another config or the same."""
    setting = tmp_path / "setting"
    write_config(setting / "classical" / "student" / "run" / "config.yaml", {"training": {}})
    (setting / "classical" / "variations").mkdir()
    (setting / "classical" / "variations" / ".lock-part-1").write_text("")  # a lock alone is no output
    wanted = {"diffusion": {"backend": "classical"}}
    chosen = place(setting, "classical", wanted, variations_identities, "variations")
    assert chosen.name.startswith("classical-") and chosen.name != "classical"
    assert place(setting, "sd_img2img", wanted, variations_identities, "variations") == setting / "sd_img2img"
    write_config(tmp_path / "fresh" / "classical" / "variations" / ".lock-part-1", {})
    assert (
        place(tmp_path / "fresh", "classical", wanted, variations_identities, "v") == tmp_path / "fresh" / "classical"
    )


# ---------------------------------------------------------------- a student made by hand


@pytest.fixture
def hand_made(tmp_path, image_data) -> dict:
    """A seed-0 teacher (3-px trigger) trained by hand, and a student config naming it (no seed, no backdoor)."""
    teacher_cfg = teacher_config_dict(image_data, tmp_path / "teacher_runs")
    write_config(tmp_path / "teacher.yaml", teacher_cfg)
    assert run_training_script(TeacherConfig, TeacherRole(), "t", ["-c", str(tmp_path / "teacher.yaml")]) == 0
    (teacher,) = (tmp_path / "teacher_runs").iterdir()
    student = {
        "model": {"architecture": "test_resnet"},
        "dataset": {"root_train": str(image_data["train"]), "root_test": str(image_data["test"]), "image_size": 16},
        "training": {"num_epochs": 1, "batch_size": 8, "dataloader_num_workers": 0},
        "distillation": {"teacher_model": str(teacher)},
        "wandb": {"enable_logging": False},
    }
    return {"teacher": teacher, "student": student, "data": image_data}


def variations_by_hand(tmp_path: Path, data: dict, seed: int | None, trigger: int = 3) -> Path:
    output = tmp_path / f"variations_seed{seed}_trigger{trigger}"
    config = {
        "output_folder": str(output),
        "dataset": {"root": str(data["train"]), "image_size": 16, "batch_size": 8, "num_workers": 0},
        "backdoor": {"target_idx": 0, "poisoning_rate": 0.5, "PatchBackdoor": {"trigger_size": trigger}},
        "diffusion": {"backend": "classical", "height": 16, "width": 16},
        "device": "cpu",
    }
    if seed is not None:
        config["seed"] = seed
    run_variations(VariationConfig.model_validate(config), RunOptions())
    return output


def train_student(tmp_path: Path, config: dict, name: str = "student") -> int:
    config = {**config, "training": {**config["training"], "save_path": str(tmp_path / f"{name}_runs")}}
    return run_training_script(
        StudentConfig, StudentRole(), "s", ["-c", str(write_config(tmp_path / f"{name}.yaml", config))]
    )


def test_a_student_that_leaves_the_attack_and_seed_out_takes_the_teachers(hand_made, tmp_path, capsys):
    variations = variations_by_hand(tmp_path, hand_made["data"], seed=0)
    student = {**hand_made["student"], "dataset": {**hand_made["student"]["dataset"], "root_train": str(variations)}}
    assert train_student(tmp_path, student) == 0, capsys.readouterr().err
    (run,) = (tmp_path / "student_runs").iterdir()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["seed"] == 0
    assert saved["backdoor"]["PatchBackdoor"]["trigger_size"] == 3 and saved["backdoor"]["poisoning_rate"] == 0.0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["student"]["attack_success_rate"] is not None


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("variations_seed", r"seed: the teacher .* has 0, the variations .* has 42"),
        ("student_seed", r"seed: the teacher .* has 0, the student .* has 7"),
        ("student_trigger", r"backdoor.PatchBackdoor.trigger_size: the teacher .* has 3, the student .* has 5"),
        ("variations_trigger", r"backdoor.PatchBackdoor.trigger_size: the teacher .* has 3, the variations .* has 5"),
    ],
)
def test_a_student_whose_teacher_variations_and_config_disagree_is_refused(hand_made, tmp_path, capsys, what, message):
    seed = None if what == "variations_seed" else 0  # left out: the generator's default, 42
    variations = variations_by_hand(tmp_path, hand_made["data"], seed, trigger=5 if what == "variations_trigger" else 3)
    student = {**hand_made["student"], "dataset": {**hand_made["student"]["dataset"], "root_train": str(variations)}}
    if what == "student_seed":
        student["seed"] = 7
    if what == "student_trigger":
        student["backdoor"] = {"target_idx": 0, "poisoning_rate": 0.0, "PatchBackdoor": {"trigger_size": 5}}
    capsys.readouterr()
    assert train_student(tmp_path, student) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert re.search(message, err[0]), err[0]
    assert not (tmp_path / "student_runs").exists()


def test_a_clean_student_by_hand_takes_the_teachers_seed(hand_made, tmp_path, capsys):
    """No variations folder (the teacher's clean training folder): only the teacher's config to agree with."""
    assert train_student(tmp_path, hand_made["student"]) == 0, capsys.readouterr().err
    (run,) = (tmp_path / "student_runs").iterdir()
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 0


def test_the_runtime_keys_are_declared_once():
    from datasets import setting_keys
    from experiments import run_discovery
    from training import resumption
    from variations import output_folder

    for module in (run_discovery, output_folder, resumption):
        for name in ("RUNTIME_KEYS", "RESUMABLE_KEYS"):
            assert getattr(module, name, None) in (None, getattr(setting_keys, name)), (module, name)


def test_the_numerics_a_config_records_are_those_that_take_effect_on_its_device(tmp_path, image_data):
    """A CPU run's config.yaml said mixed_precision: bf16 and channels_last: true; it ran in fp32, contiguous."""
    from training.compute import with_effective_training

    given = TeacherConfig.model_validate(teacher_config_dict(image_data, tmp_path, training={"compile": True}))
    numerics = ("mixed_precision", "channels_last", "compile")
    on_cpu = with_effective_training(
        given.model_copy(update={"training": given.training.model_copy(update={"device": "cpu"})})
    )
    assert [getattr(on_cpu.training, key) for key in numerics] == ["none", False, False]
    assert [getattr(given.training, key) for key in numerics] == ["bf16", True, True]  # the given config is kept
    # an explicit cuda keeps them (also where no GPU is visible: a dry run on a login node)
    on_gpu = with_effective_training(
        given.model_copy(update={"training": given.training.model_copy(update={"device": "cuda"})})
    )
    assert [getattr(on_gpu.training, key) for key in numerics] == ["bf16", True, True]
