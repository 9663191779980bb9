"""The generation loop: load (poisoned) sources, make variations, colour-correct, write PNGs atomically.

Work already on disk is skipped, so a killed run resumes where it stopped. The model always sees batches of
exactly the backend's ``model_batch_size`` (the last one padded), so an image's bytes depend only on the
image, its seeds and that size. A source whose variations hold a NaN or infinity (fp16 overflow, typically) gets
nothing written: it would become a black image in the training set. PNG encoding and writing run in background
threads while the model works on the next batch.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datasets.poisoned_image_folder import PoisonedImageFolder
from utils.atomic_io import atomic_write_png
from utils.image_tensors import to_uint8_array
from utils.progress import progress
from utils.stop_signals import ignore_stop_signals
from variations.backends import SourceBatch, VariationBackend
from variations.color_transfer import transfer_colors
from variations.output_plan import OutputLayout, PlannedImage, variation_seed

PREVIEW_COUNT = 8  # source/variation pairs kept for the W&B grid


@dataclass(frozen=True)
class GenerationJob:
    """What one process generates, where, and how it is loaded."""

    items: list[PlannedImage]  # this process's part of the plan
    layout: OutputLayout
    seed: int  # with the sample index and variation index, seeds every variation
    color_transfer: str  # none, mean_std or lab
    batch_size: int  # images per loaded batch
    num_workers: int  # loader processes decoding and poisoning the sources
    show_progress: bool = True


@dataclass
class GenerationStats:
    written: int = 0  # source images whose variations this process wrote
    skipped: int = 0  # source images already complete on disk
    seconds: float = 0.0
    # the first batch of a compiled denoiser: compilation, not throughput (kept out of images_per_second)
    warmup_seconds: float = 0.0
    warmup_images: int = 0
    peak_gpu_memory_gib: float | None = None
    previews: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    non_finite: list[str] = field(default_factory=list)  # sources whose variations held NaN/inf: nothing written

    @property
    def images_per_second(self) -> float:
        images, seconds = self.written - self.warmup_images, self.seconds - self.warmup_seconds
        if images <= 0 or seconds <= 0:  # nothing after the warm-up: the whole run is all there is
            images, seconds = self.written, self.seconds
        return images / seconds if seconds else 0.0

    def as_dict(self) -> dict:
        return {
            "written": self.written,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 2),
            "images_per_second": round(self.images_per_second, 3),
            "compile_warmup_seconds": round(self.warmup_seconds, 2),
            "peak_gpu_memory_gib": self.peak_gpu_memory_gib,
            "non_finite": len(self.non_finite),
        }


class SourceImages(Dataset):
    """(sample index, poisoned uint8 source image) for the planned items still to do."""

    def __init__(self, dataset: PoisonedImageFolder, items: list[PlannedImage]):
        self.dataset = dataset
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> tuple[int, np.ndarray]:
        index = self.items[position].index
        return index, self.dataset.load(index).image


def _init_worker(worker_id: int) -> None:
    ignore_stop_signals()  # Ctrl-C reaches the whole process group; the main process stops the run


def _keep_as_lists(batch):
    indices, images = zip(*batch, strict=True)
    return list(indices), list(images)


class _Writer:
    """Encode and write PNGs in background threads; errors surface on ``wait``."""

    def __init__(self, threads: int = 4):
        self.pool = ThreadPoolExecutor(max_workers=threads)
        self.pending: list[Future] = []

    def submit(self, image: np.ndarray, path: Path) -> None:
        self.pending.append(self.pool.submit(atomic_write_png, path, image))
        if len(self.pending) > 256:
            self.wait()

    def wait(self) -> None:
        pending, self.pending = self.pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self.pool.shutdown(wait=True)


def run_model(backend: VariationBackend, batch: SourceBatch) -> torch.Tensor:
    """The backend on fixed-size model batches (the last one padded with copies of its last image)."""
    size = backend.model_batch_size
    if size is None:
        return backend.generate(batch)
    outputs = []
    for chunk in batch.chunks(size):
        outputs.append(backend.generate(chunk.padded(size))[: len(chunk)])
    return torch.cat(outputs)


def finite_rows(variations: torch.Tensor) -> list[bool]:
    """Per image of B×V×3×H×W variations: whether every value of every variation is finite. Checked before colour
    transfer, which spreads one NaN pixel over its whole channel (then written as 0: black)."""
    return torch.isfinite(variations).flatten(1).all(1).tolist()


def colour_corrected(variations: torch.Tensor, images: list[np.ndarray], mode: str) -> torch.Tensor:
    """B×V×3×H×W variations with each source's colour statistics (``mode``: none, mean_std, lab)."""
    if mode == "none":
        return variations
    # float64 statistics: reductions whose order depends on the batch shape stay bit-stable
    sources = torch.from_numpy(np.stack(images)).to(variations.device).permute(0, 3, 1, 2).double() / 255
    per_variation = sources.repeat_interleave(variations.shape[1], 0)
    return transfer_colors(variations.flatten(0, 1).double(), per_variation, mode).reshape(variations.shape)


def generate(backend: VariationBackend, dataset: PoisonedImageFolder, job: GenerationJob) -> GenerationStats:
    """Make the missing variations of ``job.items``; returns what was done."""
    layout = job.layout
    stats = GenerationStats()
    pending = [item for item in job.items if not layout.is_complete(item)]
    stats.skipped = len(job.items) - len(pending)
    by_index = {item.index: item for item in pending}
    device = backend.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    loader = DataLoader(
        SourceImages(dataset, pending),
        batch_size=job.batch_size,
        num_workers=job.num_workers,
        collate_fn=_keep_as_lists,
        worker_init_fn=_init_worker,
        persistent_workers=False,
    )
    writer = _Writer()
    compiled = bool(backend.numerics.get("compile"))
    started = time.perf_counter()
    bar = progress(total=len(pending), desc="variations", unit="img", show=job.show_progress)
    try:
        for indices, images in loader:
            items = [by_index[index] for index in indices]
            seeds = [[variation_seed(job.seed, i, k) for k in range(layout.num_variations)] for i in indices]
            batch = SourceBatch(images, seeds, [layout.classes[item.label] for item in items])
            raw = run_model(backend, batch)
            finite = finite_rows(raw)
            pixels = to_uint8_array(colour_corrected(raw, images, job.color_transfer))
            for row, item in enumerate(items):
                if not finite[row]:
                    stats.non_finite.append(item.source)
                    continue
                for k, output in enumerate(layout.outputs(item)):
                    writer.submit(pixels[row, k], layout.folder / output)
                copy = layout.source_copy(item)
                if copy is not None:
                    writer.submit(images[row], copy)
                if len(stats.previews) < PREVIEW_COUNT:
                    stats.previews.append((images[row], pixels[row, 0]))
            stats.written += sum(finite)
            bar.update(len(indices))
            if compiled and not stats.warmup_images:
                stats.warmup_seconds, stats.warmup_images = time.perf_counter() - started, max(1, sum(finite))
        writer.wait()
    finally:
        writer.close()
        bar.close()
    stats.seconds = time.perf_counter() - started
    if device.type == "cuda":
        stats.peak_gpu_memory_gib = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return stats
