"""The generation loop: load (poisoned) sources, make variations, colour-correct, write PNGs atomically.

Work already on disk is skipped, so a killed run resumes where it stopped. PNG encoding and writing run
in background threads while the model works on the next batch.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from datasets.poisoned_image_folder import PoisonedImageFolder
from utils.atomic_io import atomic_write_png
from utils.color_transfer import transfer_colors
from utils.image_tensors import to_uint8_array
from variations.output_plan import PlannedImage, variation_seed

PREVIEW_COUNT = 8  # source/variation pairs kept for the W&B grid


@dataclass
class GenerationStats:
    written: int = 0  # source images whose variations this process wrote
    skipped: int = 0  # source images already complete on disk
    seconds: float = 0.0
    peak_gpu_memory_gib: float | None = None
    previews: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.written / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {
            "written": self.written,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 2),
            "images_per_second": round(self.images_per_second, 3),
            "peak_gpu_memory_gib": self.peak_gpu_memory_gib,
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


def _keep_as_lists(batch):
    indices, images = zip(*batch, strict=True)
    return list(indices), list(images)


def is_complete(
    item: PlannedImage, folder: Path, classes: list[str], num_variations: int, sources_folder: Path | None = None
) -> bool:
    """All of the item's outputs exist (and its source copy, when those are asked for)."""
    outputs = [folder / output for output in item.outputs(classes, num_variations)]
    if sources_folder is not None:
        outputs.append(sources_folder / item.source_copy(classes))
    return all(path.is_file() for path in outputs)


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


def generate(
    backend,
    dataset: PoisonedImageFolder,
    items: list[PlannedImage],
    classes: list[str],
    folder: Path,
    *,
    seed: int,
    num_variations: int,
    color_transfer: str,
    batch_size: int,
    num_workers: int,
    sources_folder: Path | None = None,
    show_progress: bool = True,
) -> GenerationStats:
    """Make the missing variations of ``items`` under ``folder``; returns what was done."""
    stats = GenerationStats()
    pending = [item for item in items if not is_complete(item, folder, classes, num_variations, sources_folder)]
    stats.skipped = len(items) - len(pending)
    by_index = {item.index: item for item in pending}
    device = backend.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    loader = DataLoader(
        SourceImages(dataset, pending),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_keep_as_lists,
        persistent_workers=False,
    )
    writer = _Writer()
    started = time.perf_counter()
    bar = tqdm(total=len(pending), desc="variations", unit="img", dynamic_ncols=True, disable=not show_progress)
    try:
        for indices, images in loader:
            seeds = [[variation_seed(seed, index, k) for k in range(num_variations)] for index in indices]
            variations = backend.generate(images, seeds)  # B×V×3×H×W in [0, 1] on the device
            if color_transfer != "none":
                # float64 statistics: reductions whose order depends on the batch shape stay bit-stable
                sources = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).double() / 255
                flat = transfer_colors(
                    variations.flatten(0, 1).double(), sources.repeat_interleave(num_variations, 0), color_transfer
                )
                variations = flat.reshape(variations.shape)
            pixels = to_uint8_array(variations)
            for row, index in enumerate(indices):
                item = by_index[index]
                for k, output in enumerate(item.outputs(classes, num_variations)):
                    writer.submit(pixels[row, k], folder / output)
                if sources_folder is not None:
                    writer.submit(images[row], sources_folder / item.source_copy(classes))
                if len(stats.previews) < PREVIEW_COUNT:
                    stats.previews.append((images[row], pixels[row, 0]))
            stats.written += len(indices)
            bar.update(len(indices))
        writer.wait()
    finally:
        writer.close()
        bar.close()
    stats.seconds = time.perf_counter() - started
    if device.type == "cuda":
        stats.peak_gpu_memory_gib = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return stats
