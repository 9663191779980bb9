"""Reading ImageFolder trees, checking their files, and decoding images to RGB.

The scan gives torchvision's ImageFolder indices (sorted classes, then sorted folders and files, links to
folders followed as torchvision follows them), but refuses the links that would relabel or repeat images: a
link back to the data root, into another class folder, or to a folder already scanned (loops included).
Links to single files are followed: each is an explicit choice of one image.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, has_file_allowed_extension

from utils.errors import UserError, first_line
from utils.image_tensors import resize_uint8
from utils.progress import progress

SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
PROGRESS_DELAY = 2.0  # seconds before the image check shows a progress bar (small folders stay quiet)
PARALLEL_CHECK_MIN = 2000  # images from which the image check starts worker processes (~0.5-3 s of decoding)
CHECK_BATCH = 64  # images per worker task


@dataclass(frozen=True)
class ImageFolderIndex:
    """Classes and ``(path, label)`` samples in torchvision's ImageFolder order (sorted classes, sorted files)."""

    root: Path
    classes: list[str]
    samples: list[tuple[str, int]]

    @property
    def labels(self) -> np.ndarray:
        return np.fromiter((label for _, label in self.samples), dtype=np.int64, count=len(self.samples))

    def __len__(self) -> int:
        return len(self.samples)


def list_class_folders(root: str | os.PathLike) -> list[str]:
    """Sorted class folder names under ``root`` (cheap: no file listing)."""
    try:
        classes, _ = find_classes(os.fspath(root))
    except (FileNotFoundError, NotADirectoryError) as err:
        raise UserError(f"{root}: {err}") from err
    return classes


def _join(folder: str, name: str) -> str:
    return os.path.join(folder, name)  # noqa: PTH118 (the very strings torchvision's os.walk builds)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class _ClassWalk:
    """Every folder of one class with its file names, following links to folders only where they lead apart."""

    def __init__(self, root: str, name: str, scanned: dict[str, tuple[str, str]]):
        self.root, self.name = root, name
        self.scanned = scanned  # real folder → (class, path it was reached by), across all classes
        self.real_root = os.path.realpath(root)
        self.top = _join(root, name)

    def _claim(self, path: str, real: str, above: tuple[str, ...], is_link: bool) -> None:
        """Record that ``path`` (real path ``real``) is scanned, unless that would relabel or repeat images."""
        why = None
        if _inside(self.real_root, real):
            why = f"a link back to the data root {self.root}: all its images would be labelled '{self.name}' again"
        elif _inside(real, self.real_root) and not _inside(real, _join(self.real_root, self.name)):
            other = Path(os.path.relpath(real, self.real_root)).parts[0]
            why = f"a link into class folder '{other}': its images would also be labelled '{self.name}'"
        elif real in above:
            why = f"a link that forms a loop (back to {real})"
        elif real in self.scanned:
            earlier_class, earlier = self.scanned[real]
            if not is_link:  # a real folder met after a link reached it first: the link is the culprit
                path, earlier = earlier, path
            why = f"a link to {real}, also scanned as {earlier} (class '{earlier_class}'): its images would count twice"
        if why is not None:
            raise UserError(f"{path}: {why}; remove the link (links to single image files are fine)")
        self.scanned[real] = (self.name, path)

    def run(self) -> list[tuple[str, list[str]]]:
        """(folder, file names) pairs, sorted by folder as torchvision's ``sorted(os.walk(...))``."""
        real_top = os.path.realpath(self.top)
        self._claim(self.top, real_top, (), is_link=real_top != _join(self.real_root, self.name))
        folders, stack = [], [(self.top, real_top, ())]
        while stack:
            folder, real, above = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
            except OSError as err:  # os.walk would skip the folder silently, and its images with it
                raise UserError(f"{folder}: cannot list the folder ({err.strerror or err})") from err
            files = []
            for entry in entries:
                if not entry.is_dir():  # follows links, as os.walk does: links to files count as files
                    files.append(entry.name)
                    continue
                link = entry.is_symlink()
                real_sub = os.path.realpath(entry.path) if link else _join(real, entry.name)
                self._claim(entry.path, real_sub, (*above, real), link)
                stack.append((entry.path, real_sub, (*above, real)))
            folders.append((folder, files))
        return sorted(folders)


def scan_image_folder(root: str | os.PathLike) -> ImageFolderIndex:
    """Index an ImageFolder tree with torchvision's indices (the reference's), refusing links that relabel."""
    root = Path(root)
    classes = list_class_folders(root)
    top = os.fspath(root.expanduser())  # as torchvision's make_dataset spells the paths
    scanned: dict[str, tuple[str, str]] = {}
    samples, empty = [], []
    for label, name in enumerate(classes):
        found = [
            (_join(folder, file), label)
            for folder, files in _ClassWalk(top, name, scanned).run()
            for file in sorted(files)
            if has_file_allowed_extension(file, IMG_EXTENSIONS)
        ]
        samples += found
        empty += [] if found else [name]
    if empty:
        raise UserError(
            f"{root}: no image files in class folder(s) {', '.join(empty)} "
            f"(image files must end in {', '.join(IMG_EXTENSIONS)})"
        )
    return ImageFolderIndex(root=root, classes=classes, samples=samples)


def paths_by_class(index: ImageFolderIndex) -> list[list[str]]:
    """The sample paths of each class, in ImageFolder order."""
    by_class: list[list[str]] = [[] for _ in index.classes]
    for path, label in index.samples:
        by_class[label].append(path)
    return by_class


def class_range(index: ImageFolderIndex, first: int, count: int) -> list[list[str]]:
    """Images ``first`` … ``first + count − 1`` of every class (ImageFolder order), as paths per class; a range
    that is empty, or that a class is too short for, is refused naming the first such class."""
    by_class = paths_by_class(index)
    short = [
        (name, len(paths)) for name, paths in zip(index.classes, by_class, strict=True) if len(paths) < first + count
    ]
    if count < 1 or short:
        why = "the range is empty"
        if count >= 1:
            (name, size), others = short[0], len(short) - 1
            why = f"class '{name}' has {size} images; --first {first} --per-class {count} needs {first + count}"
            why += f" ({others} more classes are short)" if others else ""
        raise UserError(f"{index.root}: images {first}–{first + count - 1} of each class do not exist: {why}")
    return [paths[first : first + count] for paths in by_class]


def image_error(path: str | os.PathLike, err: Exception) -> UserError:
    """One line naming the file and what is wrong with it (never PIL's ``<_io.BytesIO object at 0x…>``)."""
    if isinstance(err, Image.DecompressionBombError):
        why = f"too large to decode safely ({first_line(err).split(', could be')[0]})"
    elif isinstance(err, UnidentifiedImageError):
        why = "not an image PIL can read (unknown format or damaged header)"
        if Path(path).name.startswith("._"):
            why += "; it is a macOS metadata file: delete those with find <root> -name '._*' -delete"
    elif isinstance(err, FileNotFoundError) and Path(path).is_symlink():
        why = "a link to a missing file"
    elif isinstance(err, OSError) and err.strerror:
        why = err.strerror
    else:
        why = first_line(err)
    return UserError(f"cannot read image {path}: {why}")


def check_image(path: str) -> None:
    """Open and decode ``path`` as a run will (all of it: a body cut short shows only when it is decoded); raise a
    named error if that fails."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO named x.png must not block the scan
        with open(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UserError(f"cannot read image {path}: not a regular file")
            with Image.open(handle) as image:  # the header first: PIL checks the size against its bomb limit
                image.load()
    except UserError:
        raise
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise image_error(path, err) from err


class _ImageCheck(torch.utils.data.Dataset):
    """Loader-worker view of :func:`check_image` (a DataLoader spreads it over processes)."""

    def __init__(self, paths: list[str]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, position: int) -> int:
        check_image(self.paths[position])
        return position


def _count(batch: list[int]) -> int:
    return len(batch)


def check_images(samples: Iterable[tuple[str, int]], workers: int = 0, show_progress: bool = True) -> None:
    """Decode every image once before a run creates anything, so that no broken file is met after outputs exist.

    About 0.2 ms per 32-px JPEG and 0.7-1.5 ms per 224-px one on one core (a header-only scan let a body
    cut short through), so large folders are spread over ``workers`` processes, the loader
    workers the run will use anyway.
    """
    paths = [path for path, _ in samples]
    workers = workers if len(paths) >= PARALLEL_CHECK_MIN else 0
    loader = torch.utils.data.DataLoader(
        _ImageCheck(paths),
        batch_size=CHECK_BATCH,
        num_workers=workers,
        collate_fn=_count,
        generator=torch.Generator(),  # its own: iterating must not draw from the run's seeded global RNG
    )
    with progress(
        total=len(paths), desc="checking images", unit="img", delay=PROGRESS_DELAY, show=show_progress
    ) as bar:
        for checked in loader:
            bar.update(checked)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; 16-bit greyscale is scaled down rather than clipped."""
    if image.mode == "RGB":
        return image
    if image.mode in SIXTEEN_BIT_MODES:
        grey = np.asarray(image, dtype=np.float64) * (255 / 65535)
        return Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # avoids PIL's warning about palette transparency
    return image.convert("RGB")


def read_rgb(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """Decode ``path`` to an H×W×3 uint8 array, resized to ``size``×``size`` (bicubic, antialiased) if given.

    The file is read in one call and decoded from memory (PIL's lazy file reads are slower), and resized with
    ``resize_uint8``. torchvision.io would decode faster still, but its decoders are deprecated since
    torchvision 0.29.
    """
    try:
        with Image.open(io.BytesIO(Path(path).read_bytes())) as handle:
            pixels = torch.from_numpy(np.array(to_rgb(handle), dtype=np.uint8))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise image_error(path, err) from err
    if size is not None and tuple(pixels.shape[:2]) != (size, size):
        return resize_uint8(pixels, (size, size))
    return pixels.numpy()
