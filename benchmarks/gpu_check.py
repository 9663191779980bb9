"""The prepared GPU check: one run that prints what a first real GPU run needs to know, as a markdown table.

    bash benchmarks/gpu_check.sh            # on a CUDA machine: full-size random weights, fp16, ~10 minutes
    bash benchmarks/gpu_check.sh --tiny     # anywhere: tiny pipelines on the CPU, a minute (the test runs this)

Per variation backend, with its released architecture and random weights (nothing to download), images/s and peak
GPU memory of the real variation loop (one warm-up model call, then one measured call), in this order:

1. its defaults: the images per call a run with dataset batch 16 makes, its own scheduler and step count;
2. 16 images per model call, DPM-Solver++ with 25 steps;
3. 8 images per model call, DPM-Solver++ with 25 steps;
4. as 2, with the denoiser compiled (the compiling call is the warm-up).

First, the teacher: ResNet-18 training images/s at 224 px, bf16 autocast, channels_last. Rows go row by row over
the backends (every backend's defaults first); a row that would not fit the time budget is listed as skipped,
never cut short.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks import teacher_throughput
from benchmarks.random_pipelines import FAMILIES, save_random_models
from benchmarks.variation_throughput import noise_images, output_size, run_one
from training.compute import Compute
from training.setup import LoaderSpec, make_loader
from utils.distributed import resolve_device
from variations.backends import diffusion_section
from variations.backends.base import default_model_batch_size

DPM = "DPMSolverMultistepScheduler"
# (label, images per model call or None for the backend's default with dataset batch 16, schedule, compile)
ROWS = [
    ("defaults", None, "default", False),
    ("16, DPM 25", 16, f"{DPM}:25", False),
    ("8, DPM 25", 8, f"{DPM}:25", False),
    ("16, DPM 25, compiled", 16, f"{DPM}:25", True),
]
MODES = {
    # full: what a GPU check measures; tiny: the same code path on the CPU in seconds per row
    "full": {"size": "full", "source_side": 64, "teacher_side": 224, "teacher_images": 1024, "teacher_batch": 128},
    "tiny": {"size": "tiny", "source_side": 16, "teacher_side": 32, "teacher_images": 16, "teacher_batch": 8},
}
COLUMNS = ["backend", "row", "images/call", "steps", "compile", "images/s", "peak GiB", "load s", "resolution"]


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(row.get(column, "")) for column in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def tiny_steps(schedule: str) -> str:
    """Tiny mode: two steps of each schedule (the loop, not the model, is what it checks)."""
    return schedule.partition(":")[0] + ":2"


def default_per_call(args, backend: str, models: dict) -> int:
    """Images per model call a real run makes with this backend's defaults and dataset batch 16."""
    section = diffusion_section(backend=backend, **models, **output_size(args, backend))
    return default_model_batch_size(section, args.device, 2 if args.tiny else 16)


def measure(args, backend: str, models: dict, row: tuple) -> dict:
    """One row: one warm-up model call (kernels, autotuning, compilation), then one measured call."""
    label, per_call, schedule, compiled = row
    if args.tiny:
        schedule, per_call = tiny_steps(schedule), per_call and 2
    batch = per_call or default_per_call(args, backend, models)
    args.images = batch  # loaded batches of one model call: the warm-up and the measurement are one call each
    result = run_one(args, models, backend, batch, schedule, compiled, model_batch_size=batch)
    peak = result["peak_gpu_memory_gib"]
    return {
        "backend": backend,
        "row": label,
        "images/call": result["model_batch_size"],
        "steps": f"{result['scheduler'].removesuffix('Scheduler')} {result['denoising_steps']}",
        "compile": "on" if result["compiled"] else ("off" if not compiled else "n/a (CPU)"),
        "images/s": result["images_per_s"],
        "peak GiB": peak if peak is not None else "n/a",
        "load s": result["load_seconds"],
        "resolution": result["resolution"],
    }


def teacher_row(args, mode: dict, data: Path) -> dict:
    compute = Compute.for_device(args.device, "bf16", channels_last=True)
    dataset = teacher_throughput.build_dataset(str(data), mode["teacher_side"], mode["teacher_images"])
    spec = LoaderSpec(
        batch_size=mode["teacher_batch"], num_workers=args.num_workers, shuffle=True, seed=0, device=compute.device
    )
    loader = make_loader(dataset, spec)
    architecture = "test_resnet" if args.tiny else "resnet18"
    rate = teacher_throughput.training(loader, architecture, compute)
    return {
        "backend": f"teacher ({architecture})",
        "row": f"{mode['teacher_side']} px, {'bf16, channels_last' if compute.amp_dtype else 'fp32 (CPU)'}",
        "images/call": mode["teacher_batch"],
        "images/s": round(rate, 1),
        "peak GiB": round(torch.cuda.max_memory_allocated() / 2**30, 2) if args.device.type == "cuda" else "n/a",
        "resolution": f"{mode['teacher_side']}x{mode['teacher_side']}",
    }


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny pipelines on the CPU: checks the script itself")
    parser.add_argument("--budget-minutes", type=float, default=9.0, help="rows that would not fit are skipped")
    parser.add_argument("--backends", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --tiny)")
    parser.add_argument("--num-workers", type=int, default=2, help="loader processes")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    mode = MODES["tiny" if args.tiny else "full"]
    args.device = resolve_device(args.device or ("cpu" if args.tiny else "cuda"))
    if args.device.type != "cuda" and not args.tiny:
        print("gpu_check: no CUDA device; run with --tiny to check the script on the CPU")
        return 2
    # what run_one reads: sources, their size, output sizes per model
    args.size, args.image_size, args.height, args.width = mode["size"], mode["source_side"], None, None
    deadline = time.monotonic() + args.budget_minutes * 60
    dtype = torch.float16 if args.device.type == "cuda" else torch.float32
    rows, models, last = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        args.data = noise_images(tmp / "sources", 32, mode["source_side"])
        rows.append(teacher_row(args, mode, noise_images(tmp / "teacher", mode["teacher_images"], 256)))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
        # row by row over the backends, so the most telling rows (the defaults) come first for every backend
        for row in ROWS:
            for backend in args.backends:
                needed = last.get(backend, 0.0) * (3 if row[3] else 1)  # compiling: about two batches more
                if time.monotonic() + needed > deadline:
                    rows.append({"backend": backend, "row": row[0], "images/s": "skipped: time budget"})
                else:
                    if backend not in models:  # random weights, saved once (fp16 on CUDA: ~15 GB for all six)
                        models[backend] = save_random_models(backend, tmp / backend, mode["size"], dtype=dtype)
                    started = time.monotonic()
                    rows.append(measure(args, backend, models[backend], row))
                    last[backend] = time.monotonic() - started
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    device = torch.cuda.get_device_name(args.device) if args.device.type == "cuda" else "CPU"
    print(f"\n## GPU check on {device} (torch {torch.__version__}, {'fp16' if dtype == torch.float16 else 'fp32'})\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
