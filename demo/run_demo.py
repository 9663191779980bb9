"""Run the method end to end on the demo dataset: ``run_pipeline.py`` with configs/demo/experiment.yaml.

1. generate the demo dataset (demo_data/);
2. the pipeline: a BadNets teacher, variations of its poisoned training set (Versatile Diffusion when its
   weights are in the local HuggingFace cache and a GPU is present, else the ``classical`` baseline), a
   student distilled on them, and one on the clean training images for reference;
3. the same setting with the demo's own diffusion model (demo/ddpm_shapes, trained on clean shapes only):
   SDEdit variations and a student on them (the teacher and the clean student are reused);
   on both variations, the detection of poisoned training images (teacher on source vs. variation, and the
   Spectral Signatures and Activation Clustering baselines), and a student on the diffusion variations
   with the flagged images dropped;
4. write demo_results/results.md, results.json and samples.png, and print the table.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import torch

from cli.runner import run_guarded
from datasets.previews import samples_figure
from demo.dataset import generate_demo_dataset
from demo.detection_report import detection_results
from demo.report import build_results, diffusion_strength, result_name, row_name, write_results
from experiments.experiment_file import CommandLine, experiment_spec
from experiments.pipeline import run_experiment
from utils.atomic_io import atomic_write_json
from utils.errors import UserError
from utils.folder_overlap import check_apart

EXPERIMENT = Path("configs/demo/experiment.yaml")
EXPERIMENT_DIFFUSION = Path("configs/demo/experiment_diffusion.yaml")  # ddpm_sdedit with demo/ddpm_shapes
VD_MODEL = "shi-labs/versatile-diffusion"
VD_OVERRIDES = [  # Versatile Diffusion settings sized for a demo: 256 px, 25 DPM-Solver steps
    "variations.diffusion.backend=versatile_diffusion",
    "variations.diffusion.height=256",
    "variations.diffusion.width=256",
    "variations.diffusion.inference_steps=25",
    "variations.diffusion.scheduler=DPMSolverMultistepScheduler",
    "variations.dataset.batch_size=16",
]

MARKER = ".made_by_the_demo"  # in --out: the folder is the demo's, so a new demo run may replace its results
WRITTEN = ("experiments", "results.md", "results.json", "samples.png")  # what a demo run writes in --out


def prepare_output(out: Path, data: Path) -> None:
    """Make ``out`` ready for a new demo run: created (with its marker) when missing or empty, else emptied of
    what an earlier demo run wrote there (the entries in ``WRITTEN``; other files stay). A non-empty folder
    without the marker is not the demo's: refused, nothing deleted."""
    check_apart("--out", out, {"--data": data})
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise UserError(
                f"--out {out}: not empty and not made by the demo (no {MARKER} in it), so the demo will not replace "
                "what it holds; choose another --out, or empty it yourself"
            )
        for name in WRITTEN:
            path = out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        return
    atomic_write_json(out / MARKER, {"made_by": "python -m demo", "replaced_on_each_run": list(WRITTEN)})


def versatile_diffusion_cached() -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(VD_MODEL, "model_index.json"), str)


def choose_backend() -> list[str]:
    if versatile_diffusion_cached():
        if torch.cuda.is_available():
            print(f"variations: Versatile Diffusion ({VD_MODEL}, found in the HuggingFace cache)")
            return VD_OVERRIDES
        print("variations: Versatile Diffusion is cached but there is no GPU (it would take hours on a CPU)")
    else:
        print(f"variations: {VD_MODEL} is not in the local HuggingFace cache")
    print("variations: using the CLASSICAL BASELINE (image processing, no generative model)")
    return []


def run_demo(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    out = Path(args.out)
    prepare_output(out, Path(args.data))
    generate_demo_dataset(args.data, train_per_class=args.train_per_class, test_per_class=args.test_per_class)
    print(f"demo dataset: {args.data}/train and {args.data}/test")
    overrides = [f"dataset.root_train={args.data}/train", f"dataset.root_test={args.data}/test"]
    if args.epochs:  # the demo's cosine schedule spans the whole run
        overrides += [f"training.num_epochs={args.epochs}", f"lr_scheduler.CosineAnnealingLR.T_max={args.epochs}"]
    first = choose_backend()
    output = out / "experiments"
    first_command = CommandLine(
        EXPERIMENT, output=output, clean_student=True, overrides=[*overrides, *first], detection=True
    )
    result = run_experiment(experiment_spec(first_command))
    # the method's variations also train the cleaned student: the flagged images dropped
    diffusion_command = CommandLine(EXPERIMENT_DIFFUSION, output=output, overrides=overrides, cleaned_student="drop")
    diffusion = run_experiment(experiment_spec(diffusion_command))
    summaries = {
        "teacher": result.summaries["teacher"],
        result_name(result.backend): result.summaries["student"],
        "student_diffusion": diffusion.summaries["student"],
        "student_diffusion_cleaned": diffusion.summaries["cleaned_student"],
        "student_clean": result.summaries["clean_student"],
    }
    strength = diffusion_strength(diffusion.run_dirs["variations"])
    runs = {
        "teacher": result.run_dirs["teacher"],
        result_name(result.backend): result.run_dirs["student"],
        "student_diffusion": diffusion.run_dirs["student"],
        "student_clean": result.run_dirs["clean_student"],
    }
    if "cleaned_student" in diffusion.run_dirs:
        runs["student_diffusion_cleaned"] = diffusion.run_dirs["cleaned_student"]
    folders = {result.backend: result.run_dirs["variations"], "ddpm_sdedit": diffusion.run_dirs["variations"]}
    variations = {"first": result.backend, "strength": strength, "folders": folders}
    names = {"classical": "classical variation", "versatile_diffusion": "Versatile Diffusion variation"}
    detection = detection_results(
        {
            names[result.backend]: result.run_dirs["detection"],
            "diffusion variation": diffusion.run_dirs["detection"],
        }
    )
    results = build_results(summaries, variations, time.perf_counter() - started, runs, detection)
    rows = {
        row_name(result.backend): result.run_dirs["variations"],
        "diffusion variation": diffusion.run_dirs["variations"],
    }
    samples_figure(result.run_dirs["teacher"], rows, out / "samples.png")
    table = write_results(results, out)
    print(f"\n{table}\n\nresults: {out}/results.md, {out}/results.json, {out}/samples.png")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the backdoor-defence demo end to end")
    parser.add_argument("--data", default="demo_data", help="where the demo dataset is generated")
    parser.add_argument(
        "--out",
        default="demo_results",
        help="runs, variations and results (what an earlier demo run wrote is replaced)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="override training.num_epochs (all models)")
    parser.add_argument("--train-per-class", type=int, default=200, help="demo training images per class")
    parser.add_argument("--test-per-class", type=int, default=50, help="demo test images per class")
    args = parser.parse_args()
    sys.exit(run_guarded(lambda: run_demo(args)))
