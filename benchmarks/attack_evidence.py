"""Every CIFAR-10 attack through the method: teacher, classical-baseline variations, two students.

    python -m benchmarks.attack_evidence                                  # all configs/cifar10/teacher_*.yaml
    python -m benchmarks.attack_evidence --attacks sig wanet --steps teacher --train-per-class 1000 \\
        --test-per-class 200 --set training.num_epochs=2 backdoor.poisoning_rate=0.05   # a quick pilot

Per attack, under ``<out>/<attack>/``: the teacher (``configs/cifar10/teacher_<attack>.yaml``), the classical
variations of its poisoned training set (``configs/cifar10/variations.yaml`` with the teacher's resolved seed and
backdoor block), a student distilled on the clean training images (the upper bound) and one on the variations
(the teacher's config with ``poisoning_rate: 0``). Finished steps are skipped, so an interrupted run resumes.
The table (CA / ASR / RA, DER for students) goes to stdout and to ``<out>/results.md`` and ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from benchmarks.ddp_throughput import subset
from utils.atomic_io import atomic_write_json, atomic_write_text
from utils.report import markdown_table

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "cifar10"
STEPS = ("teacher", "variations", "student_clean", "student_variations")
STUDENTS = {"student_clean": "student on clean images", "student_variations": "student on classical variations"}
METRICS = ("clean_accuracy", "attack_success_rate", "robust_accuracy")


def attack_names() -> list[str]:
    return sorted(path.stem.removeprefix("teacher_") for path in CONFIGS.glob("teacher_*.yaml"))


def finished_run(save_path: Path) -> Path | None:
    """The newest run directory under ``save_path`` that wrote its summary."""
    done = sorted(path.parent for path in save_path.glob("*/summary.json"))
    return done[-1] if done else None


def run(script: str, config: Path, overrides: list[str], log: Path) -> None:
    command = [sys.executable, str(REPO / script), "-c", str(config), "--set", *overrides]
    print(f"$ {' '.join(command)}", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "disabled")}
    with log.open("w") as handle:
        result = subprocess.run(command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode:
        raise SystemExit(f"{script} failed (exit {result.returncode}); see {log}")


class Evidence:
    """The runs of one attack; each step reuses what an earlier invocation finished."""

    def __init__(self, attack: str, out: Path, data: dict[str, Path], extra: list[str]):
        self.attack, self.folder, self.data, self.extra = attack, out / attack, data, extra
        self.config = CONFIGS / f"teacher_{attack}.yaml"

    def training_overrides(self, step: str) -> list[str]:
        data = [f"dataset.root_train={self.data['train']}", f"dataset.root_test={self.data['test']}"]
        return [*data, *self.extra, f"training.save_path={self.folder / step}"]

    def teacher(self) -> Path:
        found = finished_run(self.folder / "teacher")
        if found is None:
            run("train_teacher.py", self.config, self.training_overrides("teacher"), self.folder / "teacher.log")
            found = finished_run(self.folder / "teacher")
        return found

    def variations(self, teacher: Path) -> Path:
        output = self.folder / "variations"
        if not (output / "manifest.jsonl").is_file():
            resolved = yaml.safe_load((teacher / "config.yaml").read_text())
            overrides = [
                f"output_folder={output}",
                f"dataset.root={self.data['train']}",
                f"seed={resolved['seed']}",
                f"backdoor={json.dumps(resolved['backdoor'])}",  # JSON is YAML: the teacher's exact block
            ]
            run("generate_variations.py", CONFIGS / "variations.yaml", overrides, self.folder / "variations.log")
        return output

    def student(self, step: str, teacher: Path, root_train: Path) -> Path:
        found = finished_run(self.folder / step)
        if found is None:
            overrides = [
                *self.training_overrides(step),
                f"dataset.root_train={root_train}",
                "backdoor.poisoning_rate=0.0",
                f"distillation.teacher_model={teacher}",
            ]
            run("train_student.py", self.config, overrides, self.folder / f"{step}.log")
            found = finished_run(self.folder / step)
        return found

    def run(self, steps: list[str]) -> dict:
        teacher = self.teacher()
        summaries = {"teacher": json.loads((teacher / "summary.json").read_text())}
        if "student_clean" in steps:
            done = self.student("student_clean", teacher, self.data["train"])
            summaries["student_clean"] = json.loads((done / "summary.json").read_text())
        if "variations" in steps or "student_variations" in steps:
            variations = self.variations(teacher)
            if "student_variations" in steps:
                done = self.student("student_variations", teacher, variations)
                summaries["student_variations"] = json.loads((done / "summary.json").read_text())
        resolved = yaml.safe_load((teacher / "config.yaml").read_text())["backdoor"]
        return {"poisoning_rate": resolved["poisoning_rate"], "summaries": summaries}


def percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def table(results: dict[str, dict]) -> str:
    """One row per attack and model: CA, ASR, RA (%) and, for students, DER (%)."""
    rows = []
    for attack, result in results.items():
        summaries = result["summaries"]
        teacher = summaries["teacher"]
        mode = teacher.get("attack") or {}
        name = f"{attack} ({mode.get('target_type', '?')}{', clean-label' if mode.get('clean_label') else ''})"
        rate = f"{result['poisoning_rate']:g}"
        rows.append([name, rate, "teacher", *(percent(teacher[k]) for k in METRICS), ""])
        for step, label in STUDENTS.items():
            if step in summaries:
                student, der = summaries[step]["student"], summaries[step]["der"]
                rows.append(["", "", label, *(percent(student[k]) for k in METRICS), percent(der)])
    return markdown_table(["attack", "rate", "model", "CA %", "ASR %", "RA %", "DER %"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attacks", nargs="+", choices=attack_names(), default=attack_names())
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS), help="the teacher always runs")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "attack_evidence")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "cifar10")
    parser.add_argument("--train-per-class", type=int, help="pilot: the first N training images per class")
    parser.add_argument("--test-per-class", type=int, help="pilot: the first N test images per class")
    parser.add_argument("--set", dest="extra", nargs="+", default=[], help="overrides for every training run")
    args = parser.parse_args(argv)
    data = {split: args.data / split for split in ("train", "test")}
    for split, count in (("train", args.train_per_class), ("test", args.test_per_class)):
        if count:
            data[split] = args.out / "data" / f"{split}_{count}"
            if not data[split].is_dir():
                subset(args.data / split, data[split], count)
    results = {}
    for attack in args.attacks:
        results[attack] = Evidence(attack, args.out, data, args.extra).run(args.steps)
        text = table(results)
        atomic_write_text(args.out / "results.md", text + "\n")
        atomic_write_json(args.out / "results.json", results)
    print(text)


if __name__ == "__main__":
    main()
