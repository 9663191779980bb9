"""Where every variation goes, decided up front from file names and the poison plan alone.

``<output_folder>/<class>/<name>.png`` (``<name>_v<k>.png`` when ``num_variations > 1``), where ``<class>`` is
the sample's label as the poisoned dataset gives it: the target class for all-to-one poisoning, ``(y + 1) mod n``
for all-to-all, its own class for clean-label poisoning and WaNet's cross samples. A poisoned image moved into
another class is named ``<source class>_<stem>`` there, and any name still taken in its folder gets ``_<index>``
appended (again, until it is free), so nothing is ever overwritten (CIFAR-style datasets reuse ``0000.jpg`` in every
class folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.poisoned_image_folder import Poisoning, Treatment


@dataclass(frozen=True)
class PlannedImage:
    index: int  # position in the source ImageFolder (ImageFolder order)
    source: str  # source file path
    label: int  # class the variations are filed under (the poisoned label if poisoned)
    true_label: int  # the source folder's class
    poisoned: bool
    name: str  # unique file stem within the class folder
    cross: bool = False  # a WaNet noise-mode cross sample (label kept, noisy warp)


@dataclass(frozen=True)
class OutputLayout:
    """The output folder's file names for planned images."""

    folder: Path
    classes: list[str]
    num_variations: int
    sources_folder: Path | None = None  # copies of the (poisoned) inputs, when asked for

    def outputs(self, item: PlannedImage) -> list[str]:
        """Output paths relative to the output folder, one per variation."""
        folder = self.classes[item.label]
        if self.num_variations == 1:
            return [f"{folder}/{item.name}.png"]
        return [f"{folder}/{item.name}_v{k}.png" for k in range(self.num_variations)]

    def source_copy(self, item: PlannedImage) -> Path | None:
        """Where the (poisoned) input's copy goes (``save_source_copies``), or ``None``."""
        if self.sources_folder is None:
            return None
        return self.sources_folder / f"{self.classes[item.label]}/{item.name}.png"

    def is_complete(self, item: PlannedImage) -> bool:
        """All of the item's outputs exist (and its source copy, when those are asked for)."""
        paths = [self.folder / output for output in self.outputs(item)]
        copy = self.source_copy(item)
        return all(path.is_file() for path in (*paths, *([copy] if copy else [])))


def treatment_of(poisoning: Poisoning | None, index: int, true_label: int) -> Treatment:
    """Whether a sample is poisoned or a cross sample, and the label (class folder) the dataset gives it.

    ``poisoning`` must be a single-pass plan (fixed masks), so the answer is the same in every process.
    """
    return poisoning.treatment(index, true_label) if poisoning is not None else Treatment(False, False, true_label)


def plan_outputs(samples: list[tuple[str, int]], classes: list[str], poisoning: Poisoning | None):
    """One :class:`PlannedImage` per sample, with names unique inside each class folder."""
    taken: set[tuple[int, str]] = set()
    plan = []
    for index, (path, true_label) in enumerate(samples):
        poisoned, cross, label = treatment_of(poisoning, index, true_label)
        name = Path(path).stem if label == true_label else f"{classes[true_label]}_{Path(path).stem}"
        while (label, name) in taken:  # the suffixed name may be some other file's own name: suffix again
            name = f"{name}_{index}"
        taken.add((label, name))
        plan.append(PlannedImage(index, path, label, true_label, poisoned, name, cross))
    return plan


def check_unique_outputs(plan: list[PlannedImage], layout: OutputLayout) -> None:
    """Every output path belongs to exactly one source image: checked before anything is written."""
    owner: dict[str, int] = {}
    for item in plan:
        for output in layout.outputs(item):
            if output in owner:
                raise AssertionError(f"output {output} planned for source images {owner[output]} and {item.index}")
            owner[output] = item.index


def variation_seed(seed: int, index: int, variation: int) -> int:
    """The generator seed of one variation: a hash of (seed, sample index, variation index)."""
    state = np.random.SeedSequence([seed, index, variation]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1  # 63 bits: fits torch's manual_seed everywhere
