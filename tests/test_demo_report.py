"""The demo's results.md says what was run: attack, target, rate, chance level, seeds, epochs, rows, run folders."""

import json

import yaml

from demo.report import build_results, write_results

CLASSES = ["circle", "square", "triangle", "cross"]


def summary(student: bool, ca: float, asr: float) -> dict:
    scores = {"clean_accuracy": ca, "attack_success_rate": asr, "robust_accuracy": 1 - asr}
    if student:
        return {"student": scores, "der": 0.9}
    attack = {"name": "PatchBackdoor", "target_type": "all_to_one", "target_idx": 0, "clean_label": False}
    per_class = dict.fromkeys(CLASSES, ca)
    setting = {"poisoning_rate": 0.1, "seed": 0}
    return {**scores, "per_class_accuracy": per_class, "attack": attack, "setting": setting} | {
        "num_poisoned": 60,
        "num_train": 800,
    }


def test_results_md_explains_the_setting_the_rows_and_where_the_runs_are(tmp_path):
    names = ("teacher", "student_classical", "student_diffusion", "student_clean")
    runs = {}
    for name in names:
        runs[name] = tmp_path / "experiments" / name / "run_1"
        runs[name].mkdir(parents=True)
        config = {"seed": 0, "training": {"num_epochs": 30}}
        (runs[name] / "config.yaml").write_text(yaml.safe_dump(config))
    summaries = {name: summary(name != "teacher", 0.9, 0.95 if name == "teacher" else 0.3) for name in names}
    folders = {"classical": tmp_path / "v1", "ddpm_sdedit": tmp_path / "v2"}
    results = build_results(summaries, {"first": "classical", "strength": 0.25, "folders": folders}, 60.0, runs)
    write_results(results, tmp_path)
    text = (tmp_path / "results.md").read_text()
    assert "attack: **PatchBackdoor**, all-to-one, target class **circle**" in text
    assert "poisoning rate: **10 %** of the non-target training images (60 of 800" in text
    assert "random (chance level) is **25.0 %**" in text  # 4 classes
    assert "- seed 0; every model trained for 30 epochs" in text
    assert "- student on clean training images (upper bound): distilled from the teacher on the clean" in text
    assert "- teacher (poisoned training data): trained on the poisoned training set" in text
    for folder in (*runs.values(), *folders.values()):
        assert f"`{folder}`" in text
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["variation_backend"] == "classical"  # a name, not a sentence
    assert saved["setting"]["asr_chance_level"] == 0.25 and saved["setting"]["seeds"] == [0]
