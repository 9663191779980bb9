"""Images/s and peak memory of the variation generation loop, and the share of time spent outside the model.

    python -m benchmarks.variation_throughput                                   # tiny random pipeline, CPU
    python -m benchmarks.variation_throughput --size full --device cuda --batch-sizes 8 16 \\
        --height 512 --width 512 --schedules default:50 DPMSolverMultistepScheduler:25 --compile both

Uses a random-weight Versatile Diffusion pipeline (``tiny``, or ``full``: the real architecture) saved with
save_pretrained and loaded through the real backend, and the real loop (loading, colour transfer, PNG writes).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.random_pipelines import build_random_pipeline
from datasets.image_folder import scan_image_folder
from datasets.poisoned_image_folder import PoisonedImageFolder
from utils.distributed import resolve_device
from variations.backends import build_backend, diffusion_section
from variations.generator import GenerationJob, generate
from variations.output_plan import OutputLayout, plan_outputs


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


def run_one(args, model_dir: Path, device, batch_size: int, scheduler: str | None, steps: int, compiled: bool) -> dict:
    diffusion = diffusion_section(
        model=str(model_dir),
        scheduler=scheduler,
        inference_steps=steps,
        height=args.height,
        width=args.width,
        compile=compiled,
        color_transfer="mean_std",
    )
    load_started = time.perf_counter()
    backend = TimedBackend(build_backend(diffusion, device, batch_size))
    load_seconds = time.perf_counter() - load_started
    index = scan_image_folder(args.data)
    count = min(args.images, len(index))
    plan = plan_outputs(index.samples[:count], index.classes, None)
    dataset = PoisonedImageFolder(index.samples, args.image_size, output="uint8")

    def job(items, folder):
        layout = OutputLayout(Path(folder), index.classes, num_variations=1)
        return GenerationJob(items, layout, 0, "mean_std", batch_size, num_workers=2, show_progress=False)

    with tempfile.TemporaryDirectory() as out:
        generate(backend, dataset, job(plan[:batch_size], Path(out) / "warm"))  # kernels, autotuning, compilation
        backend.seconds = 0.0
        stats = generate(backend, dataset, job(plan, Path(out) / "run"))
    return {
        "device": str(device),
        "size": args.size,
        "batch_size": batch_size,
        "scheduler": scheduler or "default",
        "steps": steps,
        "compile": compiled,
        "images": stats.written,
        "images_per_s": round(stats.images_per_second, 2),
        "model_share": round(backend.seconds / stats.seconds, 3),
        "load_seconds": round(load_seconds, 1),
        "peak_gpu_memory_gib": stats.peak_gpu_memory_gib,
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/cifar10/train")
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--height", type=int, default=32)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8])
    parser.add_argument(
        "--schedules", nargs="+", default=["default:10"], help="SCHEDULER:STEPS ('default': the model's)"
    )
    parser.add_argument("--compile", choices=["off", "on", "both"], default="off")
    args = parser.parse_args()
    device = resolve_device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "pipeline"
        build_random_pipeline(args.size).to(dtype).save_pretrained(model_dir)
        compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
        for batch_size in args.batch_sizes:
            for schedule in args.schedules:
                name, steps = schedule.split(":")
                for compiled in compiles:
                    row = run_one(
                        args, model_dir, device, batch_size, None if name == "default" else name, int(steps), compiled
                    )
                    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
