"""A variations folder is only evidence about a teacher's training set if it was made from the same data, seed
and attack: otherwise the sources, their poisoned subset and the manifest's indices mean other images.

Each check stops with one line naming both values (exit code 2), before anything is computed or written.
"""

from __future__ import annotations

from pathlib import Path

from datasets.image_folder import ImageFolderIndex, scan_image_folder
from datasets.setting_keys import attack_name
from utils.errors import UserError
from variations.output_folder import sources_fingerprint


def _leaves(value, prefix: str) -> dict:
    if isinstance(value, dict):
        return {k: v for key, inner in value.items() for k, v in _leaves(inner, f"{prefix}.{key}").items()}
    return {prefix: value}


def _first_difference(what: str, a, b) -> tuple[str, object, object] | None:
    if a == b:
        return None
    left, right = _leaves(a, what), _leaves(b, what)
    key = next(k for k in sorted(set(left) | set(right)) if left.get(k) != right.get(k))
    return key, left.get(key), right.get(key)


def check_same_setting(teacher: dict, teacher_dir: Path, variations: dict, variations_dir: Path) -> None:
    """Seed, image size and attack (the attack's name first, then every key of the block) must agree."""
    pairs = (
        ("seed", teacher.get("seed"), variations.get("seed")),
        ("dataset.image_size", teacher["dataset"].get("image_size"), variations["dataset"].get("image_size")),
        ("attack", attack_name(teacher.get("backdoor")), attack_name(variations.get("backdoor"))),
        ("backdoor", teacher.get("backdoor"), variations.get("backdoor")),
    )
    for what, a, b in pairs:
        found = _first_difference(what, a, b)
        if found is not None:
            key, left, right = found
            raise UserError(
                f"the variations folder was made with another {key} than the teacher: teacher ({teacher_dir}) has "
                f"{left!r}, variations ({variations_dir}) has {right!r}"
            )


def check_same_dataset(
    index: ImageFolderIndex, variations_sha: str | None, variations_root, variations_dir: Path
) -> None:
    """The variations' sources were the training set: same file listing and labels (generation.json)."""
    here = sources_fingerprint(index.root, index.samples)
    if variations_sha != here:
        raise UserError(
            f"the variations folder was made from another dataset than the training set: variations ({variations_dir}) "
            f"from {variations_root} (listing sha256 {str(variations_sha)[:12]}), training set {index.root} "
            f"(listing sha256 {here[:12]})"
        )


def check_teacher_dataset(teacher: dict, teacher_dir: Path, num_train: int | None, index: ImageFolderIndex) -> None:
    """The teacher was trained on this training set: its folder's listing where it still exists, else its size."""
    root = Path(teacher["dataset"]["root_train"])
    if root.is_dir() and root.resolve() != Path(index.root).resolve():
        theirs = scan_image_folder(root)
        a, b = sources_fingerprint(theirs.root, theirs.samples), sources_fingerprint(index.root, index.samples)
        if a != b:
            raise UserError(
                f"the training set is not the teacher's: teacher ({teacher_dir}) was trained on {root} (listing "
                f"sha256 {a[:12]}), training set {index.root} (listing sha256 {b[:12]})"
            )
    elif num_train is not None and num_train != len(index):
        raise UserError(
            f"the training set is not the teacher's: teacher ({teacher_dir}) was trained on {num_train} images, "
            f"training set {index.root} has {len(index)}"
        )
