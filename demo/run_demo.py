"""Run the method end to end with the real scripts and the configs in configs/demo/.

1. generate the demo dataset (demo_data/);
2. train a BadNets teacher (train_teacher.py);
3. make variations of its poisoned training set (generate_variations.py): Versatile Diffusion when its
   weights are in the local HuggingFace cache and a GPU is present, else the ``classical`` baseline;
4. distil a student on the variations, and one on the clean training images for reference
   (train_student.py);
5. write demo_results/results.md, results.json and samples.png, and print the table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from demo.dataset import generate_demo_dataset
from demo.report import build_results, samples_figure, write_results

CONFIGS = Path("configs/demo")
VD_MODEL = "shi-labs/versatile-diffusion"
VD_OVERRIDES = [  # Versatile Diffusion settings sized for a demo: 256 px, 25 DPM-Solver steps
    "diffusion.backend=versatile_diffusion",
    "diffusion.height=256",
    "diffusion.width=256",
    "diffusion.inference_steps=25",
    "diffusion.scheduler=DPMSolverMultistepScheduler",
    "dataset.batch_size=16",
]


def versatile_diffusion_cached() -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(VD_MODEL, "model_index.json"), str)


def choose_backend() -> tuple[str, list[str]]:
    if versatile_diffusion_cached():
        if torch.cuda.is_available():
            print(f"variations: Versatile Diffusion ({VD_MODEL}, found in the HuggingFace cache)")
            return "versatile_diffusion", VD_OVERRIDES
        print("variations: Versatile Diffusion is cached but there is no GPU (it would take hours on a CPU)")
    else:
        print(f"variations: {VD_MODEL} is not in the local HuggingFace cache")
    print("variations: using the CLASSICAL BASELINE (image processing, no generative model)")
    return "classical", []


def run(script: str, config: Path, *overrides: str) -> None:
    command = [sys.executable, script, "-c", str(config)]
    if overrides:
        command += ["--set", *overrides]
    print(f"\n$ {' '.join(command)}", flush=True)
    subprocess.run(command, check=True)


def only_run_dir(folder: Path) -> Path:
    (run_dir,) = sorted(p for p in folder.iterdir() if p.is_dir())
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the backdoor-defence demo end to end")
    parser.add_argument("--data", default="demo_data", help="where the demo dataset is generated")
    parser.add_argument("--out", default="demo_results", help="runs, variations and results (replaced)")
    parser.add_argument("--epochs", type=int, default=None, help="override training.num_epochs (all models)")
    parser.add_argument("--train-per-class", type=int, default=200, help="demo training images per class")
    parser.add_argument("--test-per-class", type=int, default=50, help="demo test images per class")
    args = parser.parse_args()
    started = time.perf_counter()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    generate_demo_dataset(args.data, train_per_class=args.train_per_class, test_per_class=args.test_per_class)
    print(f"demo dataset: {args.data}/train and {args.data}/test")
    data = [f"dataset.root_train={args.data}/train", f"dataset.root_test={args.data}/test"]
    # the demo's cosine schedule spans the whole run
    epochs = [f"training.num_epochs={args.epochs}", f"lr_scheduler.CosineAnnealingLR.T_max={args.epochs}"]
    epochs = epochs if args.epochs else []
    runs = out / "runs"

    run("train_teacher.py", CONFIGS / "teacher.yaml", *data, f"training.save_path={runs}/teacher", *epochs)
    teacher_dir = only_run_dir(runs / "teacher")

    backend, backend_overrides = choose_backend()
    variations = out / "variations"
    run(
        "generate_variations.py",
        CONFIGS / "variations.yaml",
        f"dataset.root={args.data}/train",
        f"output_folder={variations}",
        *backend_overrides,
    )
    student = [f"distillation.teacher_model={teacher_dir}", *epochs]
    run(
        "train_student.py",
        CONFIGS / "student.yaml",
        *data,
        f"dataset.root_train={variations}",
        f"training.save_path={runs}/student",
        *student,
    )
    run("train_student.py", CONFIGS / "student_clean.yaml", *data, f"training.save_path={runs}/student_clean", *student)

    summaries = {
        "teacher": json.loads((teacher_dir / "summary.json").read_text()),
        "student": json.loads((only_run_dir(runs / "student") / "summary.json").read_text()),
        "student_clean": json.loads((only_run_dir(runs / "student_clean") / "summary.json").read_text()),
    }
    results = build_results(summaries, backend, time.perf_counter() - started)
    samples_figure(teacher_dir, variations, out / "samples.png")
    table = write_results(results, out)
    print(f"\n{table}\n\nresults: {out}/results.md, {out}/results.json, {out}/samples.png")
