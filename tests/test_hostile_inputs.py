"""Hostile but realistic inputs (issue 13): data, output paths and checkpoints that used to corrupt results or
end in a traceback. Each must give one line naming the culprit, exit code 2, and leave nothing on disk."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import traceback
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torchvision.datasets import ImageFolder

import generate_variations
from cli.runner import run_script as run_cli
from cli.runner import run_training_script
from config.schema import TeacherConfig, VariationConfig
from datasets.image_folder import check_images, scan_image_folder
from datasets.poison_plan import Targeting
from datasets.poisoned_image_folder import Poisoning
from models.checkpoint import METADATA_KEY, save_checkpoint
from models.classifier_factory import (
    ClassifierRecord,
    build_classifier,
    classifier_from_checkpoint,
    classifier_metadata,
)
from tests.conftest import REPO, make_image_folder, teacher_config_dict, write_config
from training.roles import StudentRole, TeacherRole
from utils.errors import UserError
from variations.output_plan import OutputLayout, plan_outputs


def teacher(tmp_path, capsys, config: dict) -> tuple[int, str]:
    path = write_config(tmp_path / "teacher.yaml", config)
    code = run_training_script(TeacherConfig, TeacherRole(), "teacher", ["-c", str(path)])
    return code, capsys.readouterr().err


def generate(tmp_path, capsys, config: dict, *extra: str) -> tuple[int, str]:
    path = write_config(tmp_path / "variations.yaml", config)
    code = run_cli(
        VariationConfig, generate_variations.generate, generate_variations.parser(), ["-c", str(path), *extra]
    )
    return code, capsys.readouterr().err


def classical_config(source: Path, output: Path, **sections) -> dict:
    """The classical backend: real generation in milliseconds, no model to load."""
    config = {
        "seed": 5,
        "output_folder": str(output),
        "dataset": {"root": str(source), "image_size": 16, "batch_size": 4, "num_workers": 0},
        "backdoor": {"target_idx": 0, "poisoning_rate": 0.5, "PatchBackdoor": {"trigger_size": 3}},
        "diffusion": {"backend": "classical", "height": 16, "width": 16},
        "device": "cpu",
    }
    config.update(sections)
    return config


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    return line


# 1. Symlinks ---------------------------------------------------------------------------------------------------


def link_to_root(root: Path, outside: Path) -> None:
    (root / "dog" / "loop").symlink_to("..")


def link_to_other_class(root: Path, outside: Path) -> None:
    (root / "dog" / "cats").symlink_to(root / "cat", target_is_directory=True)


def loop_outside_the_data(root: Path, outside: Path) -> None:
    (outside / "more" / "again").symlink_to(outside / "more", target_is_directory=True)
    (root / "dog" / "more").symlink_to(outside / "more", target_is_directory=True)


def same_folder_twice(root: Path, outside: Path) -> None:
    (root / "dog" / "more").symlink_to(outside / "more", target_is_directory=True)
    (root / "frog" / "more").symlink_to(outside / "more", target_is_directory=True)


BAD_LINKS = {
    "back_to_the_root": (link_to_root, r"dog/loop: a link back to the data root"),  # the case
    "into_another_class": (link_to_other_class, r"dog/cats: a link into class folder 'cat'"),
    "loop_outside_the_data": (loop_outside_the_data, r"more/again: a link that forms a loop"),
    "one_folder_for_two_classes": (same_folder_twice, r"frog/more: a link to .*also scanned as .*dog/more"),
}


@pytest.mark.parametrize("case", BAD_LINKS, ids=list(BAD_LINKS))
def test_links_that_relabel_or_repeat_images_are_refused_by_name(tmp_path, case):
    make_link, message = BAD_LINKS[case]
    root = make_image_folder(tmp_path / "train", per_class=2)
    make_link(root, make_image_folder(tmp_path / "outside", classes=("more",), per_class=2))
    with pytest.raises(UserError, match=message):
        scan_image_folder(root)


def test_links_that_stay_apart_are_followed_in_torchvision_order(tmp_path):
    root = make_image_folder(tmp_path / "train", per_class=2)
    outside = make_image_folder(tmp_path / "outside", classes=("more",), per_class=2)
    (root / "dog" / "more").symlink_to(outside / "more", target_is_directory=True)  # a folder outside the data
    (root / "cat" / "linked.png").symlink_to(root / "dog" / "0000.png")  # one file: an explicit choice
    (root / "frog" / "nested").mkdir()
    shutil.copy(root / "frog" / "0000.png", root / "frog" / "nested" / "0000.png")
    index = scan_image_folder(root)
    assert index.samples == ImageFolder(str(root)).samples
    assert len(index) == 6 + 2 + 1 + 1


def test_checking_images_leaves_the_seeded_global_rng_alone(tmp_path):
    """The header check runs between seeding and model building: drawing from the global RNG there would change
    every run's weights and loader order."""
    samples = scan_image_folder(make_image_folder(tmp_path / "train", per_class=2)).samples
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    check_images(samples, show_progress=False)
    assert torch.equal(torch.rand(4), expected)


def test_teacher_and_generator_refuse_a_symlink_loop_before_writing(tmp_path, capsys, image_data):
    (image_data["train"] / "dog" / "loop").symlink_to("..")
    code, err = teacher(tmp_path, capsys, teacher_config_dict(image_data, tmp_path / "runs"))
    assert code == 2 and "dog/loop" in one_error_line(err)
    assert not (tmp_path / "runs").exists()
    code, err = generate(tmp_path, capsys, classical_config(image_data["train"], tmp_path / "out"))
    assert code == 2 and "dog/loop" in one_error_line(err)
    assert not (tmp_path / "out").exists()


# 2. Output names -----------------------------------------------------------------------------------------------


def colliding_samples() -> list[tuple[str, int]]:
    """The issue's case: cat/dog_0001.png and cat/dog_0001_11.png, and dog/0001.png at index 11."""
    cat = [f"/d/cat/{name}.png" for name in [f"c{i}" for i in range(8)] + ["dog_0001", "dog_0001_11"]]
    dog = [f"/d/dog/{i:04d}.png" for i in range(16)]
    return [(path, 0) for path in cat] + [(path, 1) for path in dog]


def test_output_names_are_unique_even_when_a_suffixed_name_exists():
    samples = colliding_samples()
    poisoned = np.array([label == 1 for _, label in samples])  # every dog image goes into cat
    poisoning = Poisoning(attack=None, targeting=Targeting(num_classes=2, target_idx=0), fixed_mask=poisoned)
    plan = plan_outputs(samples, ["cat", "dog"], poisoning)
    for variations in (1, 2):
        outputs = [o for item in plan for o in OutputLayout(Path("/out"), ["cat", "dog"], variations).outputs(item)]
        assert len(set(outputs)) == len(outputs) == 26 * variations
    assert plan[11].name != "dog_0001_11" and plan[9].name == "dog_0001_11"  # sources keep their own names


def test_generator_writes_one_file_per_source_with_colliding_names(tmp_path, capsys):
    root = make_image_folder(tmp_path / "train", classes=("cat", "dog"), per_class=16)
    for i, name in enumerate(["dog_0001", "dog_0001_11"]):
        (root / "cat" / f"{i:04d}.png").rename(root / "cat" / f"{name}.png")
    for i in range(10, 16):  # cat keeps 10 files, so dog/0001.png is sample 11
        (root / "cat" / f"{i:04d}.png").unlink()
    backdoor = {"target_idx": 0, "poisoning_rate": 1.0, "PatchBackdoor": {"trigger_size": 3}}
    code, err = generate(tmp_path, capsys, classical_config(root, tmp_path / "out", backdoor=backdoor))
    assert code == 0, err
    records = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == 26 and len({r["output"] for r in records}) == 26
    assert len(list((tmp_path / "out").rglob("*.png"))) == 26


# 3. Output folder locks (the two-process case is in test_variations.py) ----------------------------------------


def test_part_locks_exclude_the_same_part_and_other_splits(tmp_path):
    from utils.folder_lock import PartLock

    folder = tmp_path / "out"
    first, second = PartLock.acquire(folder, 0, 2), PartLock.acquire(folder, 1, 2)  # two shards side by side
    here = f"pid {os.getpid()} on host {socket.gethostname()}"
    for index, count in [(0, 2), (0, 1), (2, 3)]:  # the same shard, a full run, another split
        with pytest.raises(UserError, match=f"{folder}: in use by {here}"):
            PartLock.acquire(folder, index, count)
    first.release()
    second.release()
    whole = PartLock.acquire(folder, 0, 1)
    with pytest.raises(UserError, match="in use by"):
        PartLock.acquire(folder, 1, 2)
    whole.release()
    assert list(folder.iterdir()) == []  # released locks leave no files


def test_a_stale_lock_of_a_killed_process_is_taken_over(tmp_path, capsys, image_data):
    """A real process takes the lock and is killed (SIGKILL) while holding it."""
    out = tmp_path / "out"
    code = f"import os, signal, sys; sys.path.insert(0, {str(REPO)!r}); from utils.folder_lock import PartLock; "
    code += f"PartLock.acquire({str(out)!r}, 0, 1); os.kill(os.getpid(), signal.SIGKILL)"
    died = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert died.returncode == -signal.SIGKILL
    (lock,) = out.iterdir()
    holder = json.loads(lock.read_text())
    assert holder["host"] == socket.gethostname()
    result, err = generate(tmp_path, capsys, classical_config(image_data["train"], out))
    assert result == 0, err
    assert f"took over the lock of pid {holder['pid']} on host {holder['host']}" in err
    assert not lock.exists() and len(list(out.rglob("*.png"))) == 18


# 6.–8. Config values are covered in test_config.py --------------------------------------------------------------

# 9. Decompression bombs and non-UTF-8 names ----------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width``×``height`` pixels (its pixel data never comes: the header is the attack)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_decompression_bomb_is_named_before_a_run_directory_exists(tmp_path, capsys, image_data):
    (image_data["train"] / "dog" / "huge.png").write_bytes(png_header(20000, 20000))
    code, err = teacher(tmp_path, capsys, teacher_config_dict(image_data, tmp_path / "runs"))
    line = one_error_line(err)
    assert code == 2 and "dog/huge.png" in line and "400000000 pixels" in line
    assert not (tmp_path / "runs").exists()


def test_non_utf8_file_names_are_kept_as_they_are_on_disk(tmp_path, capsys, image_data):
    dog = image_data["train"] / "dog"
    (dog / "0001.png").rename(dog / os.fsdecode(b"caf\xe9.png"))  # Latin-1 bytes: not UTF-8
    code, err = generate(tmp_path, capsys, classical_config(image_data["train"], tmp_path / "out"))
    assert code == 0, err
    written = {os.fsencode(path.name) for path in (tmp_path / "out").rglob("*.png")}
    assert b"caf\xe9.png" in written or b"dog_caf\xe9.png" in written
    assert len((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()) == 18


# 10. Unreadable files and unusable output paths ------------------------------------------------------------------


def test_undecodable_file_is_named_before_a_run_directory_exists(tmp_path, capsys, image_data):
    (image_data["train"] / "dog" / "._0001.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    code, err = teacher(tmp_path, capsys, teacher_config_dict(image_data, tmp_path / "runs"))
    line = one_error_line(err)
    assert code == 2 and "dog/._0001.png" in line and "BytesIO" not in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("case", ["is_a_file", "under_a_file"])
def test_unusable_output_paths_are_one_line(tmp_path, capsys, image_data, case):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    target = blocker if case == "is_a_file" else blocker / "runs"
    code, err = teacher(tmp_path, capsys, teacher_config_dict(image_data, target))
    line = one_error_line(err)
    assert code == 2 and "training.save_path" in line and str(blocker) in line and "not a folder" in line
    code, err = generate(tmp_path, capsys, classical_config(image_data["train"], target))
    line = one_error_line(err)
    assert code == 2 and "output_folder" in line and str(blocker) in line and "not a folder" in line
    assert blocker.read_text() == "a file, not a folder"


@pytest.fixture
def unwritable(tmp_path):
    """A folder this process cannot write in: read-only for a user, immutable (chattr +i) for root."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
        pytest.skip("root, and no immutable attribute on this file system: nothing is unwritable for root")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_permission_denied_is_one_line_naming_the_folder(tmp_path, capsys, image_data, unwritable):
    code, err = teacher(tmp_path, capsys, teacher_config_dict(image_data, unwritable / "runs"))
    line = one_error_line(err)
    assert code == 2 and "training.save_path" in line and str(unwritable) in line and "permission denied" in line
    code, err = generate(tmp_path, capsys, classical_config(image_data["train"], unwritable / "out"))
    line = one_error_line(err)
    assert code == 2 and "output_folder" in line and str(unwritable) in line and "permission denied" in line
    assert list(unwritable.iterdir()) == []


def in_restricted_child(restrict, work) -> tuple[int, str]:
    """``work()`` in a forked copy of this process that first applies ``restrict`` to itself: the kernel
    enforces the limit on a real process, without a new interpreter's start-up. Returns (exit code, stderr)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        code = 99
        try:
            os.close(read)
            sys.stderr = os.fdopen(write, "w", buffering=1)
            restrict()
            code = work()
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        err = pipe.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err


def limit_file_size():
    """Writes past 400 bytes fail with EFBIG, as a full disk fails them with ENOSPC (same code path)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (400, 400))


def test_full_disk_is_one_line_naming_the_file_and_leaves_nothing(tmp_path, image_data):
    config = write_config(tmp_path / "v.yaml", classical_config(image_data["train"], tmp_path / "out"))
    parser = generate_variations.parser()
    code, err = in_restricted_child(
        limit_file_size, lambda: run_cli(VariationConfig, generate_variations.generate, parser, ["-c", str(config)])
    )
    line = one_error_line(err)
    assert code == 2 and str(tmp_path / "out" / "config.yaml") in line and "too large" in line
    assert not (tmp_path / "out").exists()


# 11. Forged teacher checkpoints -----------------------------------------------------------------------------------


TINY_TEACHER = ClassifierRecord(
    architecture="test_resnet", num_classes=3, class_names=list("abc"), image_size=16, mean=(0,) * 3, std=(1,) * 3
)


def forged_checkpoint(path: Path, metadata) -> Path:
    """A tiny real teacher's weights under a header the attacker wrote."""
    model = build_classifier("test_resnet", 3)
    save_checkpoint(path, model, classifier_metadata(TINY_TEACHER))
    from safetensors.torch import load_file

    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    save_file(load_file(path), path, metadata={"format": "pt", METADATA_KEY: text})
    return path


def good_metadata(**changes) -> dict:
    return {**classifier_metadata(TINY_TEACHER), **changes}


FORGED = {
    "not_json": ("{'architecture': 'resnet18'", "not JSON"),
    "missing_keys": (json.dumps({"architecture": "test_resnet"}), "num_classes"),
    "huge_num_classes": (good_metadata(num_classes=10**9), "num_classes"),
    "huge_image_size": (good_metadata(image_size=10**6), "image_size"),
    "unknown_architecture": (good_metadata(model_name="no_such_net"), "no_such_net"),
    "nan_std": ("{" + json.dumps(good_metadata())[1:].replace('"std": [1, 1, 1]', '"std": [NaN, 1, 1]'), "std"),
}


@pytest.mark.parametrize("case", FORGED, ids=list(FORGED))
def test_forged_teacher_checkpoint_blames_the_file(tmp_path, case):
    metadata, fragment = FORGED[case]
    path = forged_checkpoint(tmp_path / "model.safetensors", metadata)
    with pytest.raises(UserError) as caught:
        classifier_from_checkpoint(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and fragment in message
    assert "model.architecture" not in message and "model.num_classes" not in message


def test_student_with_a_forged_teacher_stops_before_its_run_directory(tmp_path, capsys, image_data):
    from config.schema import StudentConfig

    path = forged_checkpoint(tmp_path / "model.safetensors", good_metadata(num_classes=10**9))
    config = teacher_config_dict(image_data, tmp_path / "runs", backdoor={"poisoning_rate": 0.0})
    config["distillation"] = {"teacher_model": str(path)}
    config_path = write_config(tmp_path / "student.yaml", config)
    code = run_training_script(StudentConfig, StudentRole(), "student", ["-c", str(config_path)])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and str(path) in line and "num_classes" in line
    assert not (tmp_path / "runs").exists()


def test_reference_run_config_with_a_huge_class_count_is_refused_before_building(tmp_path):
    from models.teacher_reference import TeacherSource, load_teacher

    source = TeacherSource(tmp_path / "w.pth", "team/p/old", legacy={"architecture": "resnet18", "num_classes": 10**9})
    with pytest.raises(UserError, match=r"team/p/old.*num_classes 1000000000"):
        load_teacher(source)
