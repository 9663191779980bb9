"""Images/s and peak memory of the variation loop per backend, and the share of time spent inside the model.

    python -m benchmarks.variation_throughput                   # every backend, tiny random pipelines, CPU
    python -m benchmarks.variation_throughput --device cuda     # released sizes, fp16, the GPU set below

Each backend's pipelines get random weights (``tiny``, or ``full``: the released architectures, saved in fp16 on
CUDA) and load from disk through the real backend; the real loop runs (loading, colour transfer, PNG writes).
A schedule is ``SCHEDULER[:STEPS]``: ``default`` is the checkpoint's scheduler, STEPS defaults to the backend's
default step count and ``half`` halves it. ``full`` renders at each model's default resolution unless
``--height``/``--width`` say otherwise. Defaults by device: on the CPU tiny pipelines, batch 8, 10 default
steps; on CUDA the full set: released sizes, batches of 8 and 16, default steps against DPM-Solver at half of
them. Sources: ``--data`` (an ImageFolder), else generated noise images (random weights make content moot).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.random_pipelines import FAMILIES, save_random_models
from datasets.image_folder import scan_image_folder
from datasets.poisoned_image_folder import PoisonedImageFolder
from utils.distributed import resolve_device
from variations.backends import BACKENDS, build_backend, diffusion_section
from variations.generator import GenerationJob, generate
from variations.output_plan import OutputLayout, plan_outputs

# pixels: each backend's default output size (unCLIP's native 768; Kandinsky's model-card 768; DDPM-CIFAR's 32); the
# others 512
NATIVE_SIDE = {"stable_unclip": 768, "kandinsky22": 768, "ddpm_sdedit": 32}
TINY_SIDE = 32  # pixels: the tiny pipelines' scale
# What a run measures unless told otherwise. CUDA: the GPU figures, so that `--device cuda` alone gives
# them; CPU: a quick loop-cost check (the released models would take hours there).
DEVICE_DEFAULTS = {
    "cpu": {"size": "tiny", "batch_sizes": [8], "schedules": ["default:10"]},
    "cuda": {"size": "full", "batch_sizes": [8, 16], "schedules": ["default", "DPMSolverMultistepScheduler:half"]},
}


class TimedBackend:
    """Wraps a backend to add up the time spent inside the model."""

    def __init__(self, backend):
        self.backend, self.device, self.seconds = backend, backend.device, 0.0
        self.model_batch_size, self.numerics = backend.model_batch_size, backend.numerics

    def generate(self, batch):
        started = time.perf_counter()
        out = self.backend.generate(batch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - started
        return out


def schedule(name: str, backend: str) -> tuple[str | None, int]:
    """``SCHEDULER[:STEPS]`` → (scheduler class or None for the checkpoint's, steps)."""
    scheduler, _, steps = name.partition(":")
    default = BACKENDS[backend].Section.model_fields["inference_steps"].default
    count = {"": default, "half": max(1, default // 2)}.get(steps) or int(steps)
    return (None if scheduler == "default" else scheduler), count


def output_size(args, backend: str) -> dict:
    side = TINY_SIDE if args.size == "tiny" else NATIVE_SIDE.get(backend, 512)
    return {"height": args.height or side, "width": args.width or side}


def with_device_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the options left unset with ``args.device``'s defaults."""
    for key, value in DEVICE_DEFAULTS["cuda" if args.device.type == "cuda" else "cpu"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def noise_images(folder: Path, count: int, side: int) -> Path:
    """``count`` seeded noise PNGs in two class folders: sources for random-weight pipelines, no data needed."""
    rng = np.random.default_rng(0)
    for i in range(count):
        target = folder / f"class_{i % 2}" / f"{i:05d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(target)
    return folder


def run_one(args, models: dict, backend: str, batch_size: int, name: str, compiled: bool, **extra) -> dict:
    """One measurement; ``extra``: further ``diffusion`` keys (``model_batch_size``, say)."""
    scheduler, steps = schedule(name, backend)
    diffusion = diffusion_section(
        backend=backend,
        **models,
        scheduler=scheduler,
        inference_steps=steps,
        compile=compiled,
        color_transfer="mean_std",
        **output_size(args, backend),
        **extra,
    )
    load_started = time.perf_counter()
    timed = TimedBackend(build_backend(diffusion, args.device, batch_size))
    load_seconds = time.perf_counter() - load_started
    index = scan_image_folder(args.data)
    count = min(args.images, len(index))
    plan = plan_outputs(index.samples[:count], index.classes, None)
    dataset = PoisonedImageFolder(index.samples, args.image_size, output="uint8")

    def job(items, folder):
        layout = OutputLayout(Path(folder), index.classes, num_variations=1)
        return GenerationJob(items, layout, 0, "mean_std", batch_size, args.num_workers, show_progress=False)

    with tempfile.TemporaryDirectory() as out:
        generate(timed, dataset, job(plan[:batch_size], Path(out) / "warm"))  # kernels, autotuning, compilation
        timed.seconds = 0.0
        if args.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(args.device)
        stats = generate(timed, dataset, job(plan, Path(out) / "run"))
    return {
        "backend": backend,
        "device": str(args.device),
        "size": args.size,
        "dtype": timed.numerics["dtype"],
        "batch_size": batch_size,
        "model_batch_size": timed.model_batch_size,  # images per model call (padded)
        "compiled": bool(timed.numerics.get("compile")),
        "scheduler": scheduler or "default",
        "steps": steps,
        "denoising_steps": int(steps * getattr(diffusion, "strength", 1.0)),  # img2img runs strength × steps
        "resolution": f"{diffusion.height}x{diffusion.width}",
        "compile": compiled,
        "images": stats.written,
        "images_per_s": round(stats.images_per_second, 3),
        "model_share": round(timed.seconds / stats.seconds, 3),
        "load_seconds": round(load_seconds, 1),
        "peak_gpu_memory_gib": stats.peak_gpu_memory_gib,
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="ImageFolder of sources (default: generated noise images)")
    parser.add_argument("--backends", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--size", choices=["tiny", "full"], default=None, help="default: full on CUDA, else tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32, help="source side after loading, pixels")
    parser.add_argument("--num-workers", type=int, default=2, help="loader processes")
    parser.add_argument("--height", type=int, default=None, help="output height (default: per model)")
    parser.add_argument("--width", type=int, default=None, help="output width (default: per model)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="default: 8 16 on CUDA, else 8")
    parser.add_argument(
        "--schedules",
        nargs="+",
        default=None,
        help="SCHEDULER[:STEPS|half]; default: default DPMSolverMultistepScheduler:half on CUDA, else default:10",
    )
    parser.add_argument("--compile", choices=["off", "on", "both"], default="off")
    return parser


def main() -> None:
    args = parser().parse_args()
    args.device = resolve_device(args.device)
    with_device_defaults(args)
    dtype = torch.float16 if args.device.type == "cuda" else torch.float32
    compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    with tempfile.TemporaryDirectory() as sources:
        if args.data is None:
            args.data = noise_images(Path(sources), args.images, args.image_size)
        for backend in args.backends:
            with tempfile.TemporaryDirectory() as tmp:
                models = save_random_models(backend, Path(tmp), args.size, dtype=dtype)
                for batch_size in args.batch_sizes:
                    for name in args.schedules:
                        for compiled in compiles:
                            # on CUDA a batch size is images per model call, as set (the default would cap it
                            # by output size); on the CPU the default of one image per call, as before
                            extra = {"model_batch_size": batch_size} if args.device.type == "cuda" else {}
                            row = run_one(args, models, backend, batch_size, name, compiled, **extra)
                            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
