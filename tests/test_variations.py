"""generate_variations.py with a tiny random Versatile Diffusion pipeline loaded from disk."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import generate_variations
from cli.runner import run_script as run_cli
from config.loading import load_config
from config.schema import TeacherConfig, VariationConfig
from datasets.build import build_experiment_data
from datasets.image_folder import scan_image_folder
from datasets.poison_plan import fixed_poison_indices
from tests.conftest import REPO, free_port, make_image_folder, script_env, variation_config_dict, write_config

CLASSES = ["cat", "dog", "frog"]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """3 classes × 4 images, named 0000.png... in every class (names collide across classes)."""
    return make_image_folder(tmp_path_factory.mktemp("src") / "train", per_class=4, size=16, seed=3)


def generate(tmp_path, config: dict, *extra: str, name: str = "cfg.yaml") -> int:
    path = write_config(tmp_path / name, config)
    return run_cli(
        VariationConfig, generate_variations.generate, generate_variations.parser(), ["-c", str(path), *extra]
    )


def png_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, source, tiny_vd_model) -> Path:
    """An uninterrupted single-process run (batch size 4) that others are compared with byte for byte."""
    tmp = tmp_path_factory.mktemp("reference")
    assert generate(tmp, variation_config_dict(source, tmp / "out", tiny_vd_model)) == 0
    return tmp / "out"


def test_output_tree_names_and_manifest(reference, source):
    files = png_bytes(reference)
    assert len(files) == 12
    labels = scan_image_folder(source).labels
    poisoned = fixed_poison_indices(labels, 0, 0.5, False, 5)
    assert len(poisoned) == 4
    # poisoned dog/frog images are filed under the target class with their source class in the name
    expected_cat = {f"cat/{i:04d}.png" for i in range(4)}
    for index in poisoned:
        source_class = CLASSES[labels[index]]
        expected_cat.add(f"cat/{source_class}_{index % 4:04d}.png")
    assert {f for f in files if f.startswith("cat/")} == expected_cat
    assert len({f for f in files if not f.startswith("cat/")}) == 4
    for name in files:
        with Image.open(reference / name) as image:
            assert image.size == (32, 32) and image.mode == "RGB"

    records = [json.loads(line) for line in (reference / "manifest.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(12))
    assert sorted(r["output"] for r in records) == sorted(files)
    assert {r["index"] for r in records if r["poisoned"]} == set(poisoned.tolist())
    for r in records:
        assert (r["class"] == "cat") if r["poisoned"] else (r["class"] == r["source_class"])
        assert r["variation"] == 0 and isinstance(r["seed"], int)
        assert Path(r["source"]).parent.name == r["source_class"]
    assert len({r["seed"] for r in records}) == 12
    saved = yaml.safe_load((reference / "config.yaml").read_text())
    assert (
        saved["diffusion"]["color_transfer"] == "mean_std" and saved["backdoor"]["PatchBackdoor"]["trigger_size"] == 3
    )
    assert not list(reference.glob("manifest.part-*"))


def test_two_variations_are_all_kept(tmp_path, source, tiny_vd_model):
    config = variation_config_dict(source, tmp_path / "out", tiny_vd_model, diffusion={"num_variations": 2})
    assert generate(tmp_path, config) == 0
    files = png_bytes(tmp_path / "out")
    assert len(files) == 24
    assert files["dog/0000_v0.png"] != files["dog/0000_v1.png"]
    records = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert [(r["index"], r["variation"]) for r in records] == [(i, v) for i in range(12) for v in (0, 1)]


def test_poisoned_inputs_equal_the_teachers(tmp_path, source, tiny_vd_model, image_data):
    """Same seed + backdoor block as the teacher: same indices, same pixels."""
    config = variation_config_dict(
        source, tmp_path / "out", tiny_vd_model, save_source_copies=True, diffusion={"color_transfer": False}
    )
    assert generate(tmp_path, config) == 0
    teacher = load_config(
        TeacherConfig,
        write_config(
            tmp_path / "t.yaml",
            {
                "seed": 5,
                "dataset": {"root_train": str(source), "root_test": str(source), "image_size": 16},
                "backdoor": config["backdoor"],
            },
        ),
    )
    data = build_experiment_data(teacher)
    records = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in records if r["poisoned"]) == data.poison_indices.tolist()
    data.train.output = "uint8"
    for r in records:
        copy = np.array(Image.open(tmp_path / "out_sources" / r["output"]))
        np.testing.assert_array_equal(copy, data.train.load(r["index"]).image)
        if r["poisoned"]:
            assert (copy[-3:, -3:][0, 0] == 0).all() and (copy[-3:, -3:][0, 1] == 255).all()  # checkerboard


def test_bytes_do_not_depend_on_batch_size_or_workers(tmp_path, source, tiny_vd_model, reference):
    """CPU default (one image per model call): batch size and workers change nothing."""
    outputs = []
    for batch_size, workers in [(1, 0), (5, 2)]:
        config = variation_config_dict(
            source,
            tmp_path / f"out{batch_size}",
            tiny_vd_model,
            dataset={"batch_size": batch_size, "num_workers": workers},
        )
        del config["diffusion"]["model_batch_size"]
        assert generate(tmp_path, config, name=f"{batch_size}.yaml") == 0
        outputs.append(png_bytes(tmp_path / f"out{batch_size}"))
    assert outputs[0] == outputs[1] and len(outputs[0]) == 12


def test_padded_model_batches_make_bytes_independent_of_the_split(tmp_path, source, tiny_vd_model, reference):
    """Batched path: other batch compositions (batch size 3, 2 workers) give the reference's bytes."""
    config = variation_config_dict(source, tmp_path / "out", tiny_vd_model, dataset={"batch_size": 3, "num_workers": 2})
    assert generate(tmp_path, config) == 0
    assert png_bytes(tmp_path / "out") == png_bytes(reference)


def test_shards_are_disjoint_and_merge(tmp_path, source, tiny_vd_model, reference):
    config = variation_config_dict(source, tmp_path / "out", tiny_vd_model)
    assert generate(tmp_path, config, "--shard", "2/3") == 0
    out = tmp_path / "out"
    assert len(png_bytes(out)) == 4 and not (out / "manifest.jsonl").exists()
    assert (out / "manifest.part-00002-of-00003.jsonl").is_file()
    assert generate(tmp_path, config, "--shard", "1/3") == 0
    assert generate(tmp_path, config, "--shard", "3/3") == 0
    assert png_bytes(out) == png_bytes(reference)
    assert (out / "manifest.jsonl").read_text() == (reference / "manifest.jsonl").read_text()
    assert not list(out.glob("manifest.part-*"))


def test_torchrun_two_processes_match_one(tmp_path, source, tiny_vd_model):
    """1 vs 2 gloo processes. CPU kernels split their sums by thread count, so both use one thread each."""
    env = {**script_env(tmp_path), "OMP_NUM_THREADS": "1"}
    outputs = {}
    for processes in (1, 2):
        out = tmp_path / f"out{processes}"
        config = write_config(tmp_path / f"{processes}.yaml", variation_config_dict(source, out, tiny_vd_model))
        launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}"]
        result = subprocess.run(
            [*launcher, f"--master_port={free_port()}", str(REPO / "generate_variations.py"), "-c", str(config)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert not list(out.glob("manifest.part-*"))
        outputs[processes] = (png_bytes(out), (out / "manifest.jsonl").read_text())
    assert len(outputs[1][0]) == 12
    assert outputs[1] == outputs[2]


def start_generator(tmp_path, config: dict) -> tuple[subprocess.Popen, list[str]]:
    """generate_variations.py in its own process (stderr in ``generator.log``), and its command line."""
    path = write_config(tmp_path / "cfg.yaml", config)
    command = [sys.executable, str(REPO / "generate_variations.py"), "-c", str(path)]
    with open(tmp_path / "generator.log", "w") as log:
        process = subprocess.Popen(command, cwd=REPO, env=script_env(tmp_path), stdout=subprocess.DEVNULL, stderr=log)
    return process, command


def wait_while(condition, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.time() + seconds
    while condition() and time.time() < deadline and process.poll() is None:
        time.sleep(0.01)


def test_resume_after_sigkill_gives_the_uninterrupted_result(tmp_path, source, tiny_vd_model):
    config = variation_config_dict(
        source, tmp_path / "out", tiny_vd_model, dataset={"batch_size": 1}, diffusion={"inference_steps": 12}
    )
    del config["diffusion"]["model_batch_size"]  # CPU default: one image per model call
    process, command = start_generator(tmp_path, config)
    out = tmp_path / "out"
    wait_while(lambda: len(list(out.rglob("*.png"))) < 3, process, seconds=120)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = list(out.rglob("*.png"))
    assert 3 <= len(done) < 12, "the run should have been killed midway"
    for png in done:  # every file that exists is complete
        with Image.open(png) as image:
            image.load()
    result = subprocess.run(command, cwd=REPO, env=script_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resume" in result.stderr
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    fresh = variation_config_dict(source, tmp_path / "fresh", tiny_vd_model, diffusion={"inference_steps": 12})
    del fresh["diffusion"]["model_batch_size"]
    assert generate(tmp_path, fresh, name="fresh.yaml") == 0
    assert png_bytes(out) == png_bytes(tmp_path / "fresh")
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 12


def holder_pid(out: Path) -> int | None:
    """The pid a part lock of ``out`` names, once its holder has written it."""
    for lock in out.glob(".lock-part-*"):
        try:
            return json.loads(lock.read_text())["pid"]
        except (OSError, ValueError, KeyError):
            return None
    return None


def test_a_second_generator_on_a_busy_folder_is_refused_and_the_first_finishes(tmp_path, capsys, tiny_vd_model):
    """Two real processes. The first is frozen (SIGSTOP) once it holds the folder, before its model has even
    loaded, so the second meets it mid-run however slow the machine is."""
    small = make_image_folder(tmp_path / "src", per_class=1, size=16)  # one model batch: the first finishes soon
    config = variation_config_dict(small, tmp_path / "out", tiny_vd_model)
    first, _ = start_generator(tmp_path, config)
    out = tmp_path / "out"
    wait_while(lambda: holder_pid(out) is None, first, seconds=300)
    os.kill(first.pid, signal.SIGSTOP)
    try:
        assert first.poll() is None and holder_pid(out) == first.pid
        files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert generate(tmp_path, config) == 2
        (error,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert f"output_folder: {out}: in use by pid {first.pid} on host {socket.gethostname()}" in error
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files  # the second run touched nothing
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert first.wait(timeout=300) == 0, (tmp_path / "generator.log").read_text()[-2000:]
    assert len(png_bytes(out)) == 3 and not [p for p in out.rglob("*") if ".tmp-" in p.name or ".lock" in p.name]


def test_other_config_is_refused_unless_overwrite(tmp_path, capsys, source, tiny_vd_model):
    config = variation_config_dict(source, tmp_path / "out", tiny_vd_model)
    assert generate(tmp_path, config) == 0
    capsys.readouterr()
    config["diffusion"]["inference_steps"] = 3
    assert generate(tmp_path, config) == 2
    err = capsys.readouterr().err
    (error,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert "diffusion.inference_steps: 2 → 3" in error and "--overwrite" in error
    config["dataset"]["batch_size"] = 2  # runtime settings alone never block a resume
    config["diffusion"]["inference_steps"] = 2
    assert generate(tmp_path, config) == 0
    config["diffusion"]["inference_steps"] = 3
    assert generate(tmp_path, config, "--overwrite") == 0
    assert yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["diffusion"]["inference_steps"] == 3


def test_foreign_folder_is_refused(tmp_path, capsys, source, tiny_vd_model):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    assert generate(tmp_path, variation_config_dict(source, tmp_path / "out", tiny_vd_model), "--overwrite") == 2
    assert "was not made by generate_variations.py" in capsys.readouterr().err
    assert (tmp_path / "out" / "notes.txt").exists()


def test_missing_model_and_offline_hub_and_unreadable_image(tmp_path, capsys, source, tiny_vd_model, monkeypatch):
    config = variation_config_dict(source, tmp_path / "out", tmp_path / "no_model")
    assert generate(tmp_path, config) == 2
    assert f"diffusion.model: folder not found: {tmp_path / 'no_model'}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # the model loads before the output folder is made

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))
    config = variation_config_dict(source, tmp_path / "out2", "shi-labs/versatile-diffusion")
    assert generate(tmp_path, config) == 2
    err = capsys.readouterr().err
    assert "diffusion.model: cannot load 'shi-labs/versatile-diffusion'" in err and "HF_HUB_OFFLINE" in err

    broken = make_image_folder(tmp_path / "broken", per_class=2, size=16)
    (broken / "dog" / "0001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    config = variation_config_dict(broken, tmp_path / "out3", tiny_vd_model, dataset={"num_workers": 1})
    assert generate(tmp_path, config) == 2
    err = capsys.readouterr().err
    assert "cannot read image" in err and "dog/0001.png" in err and "Traceback" not in err


def test_without_backdoor_the_folder_is_used_as_is(tmp_path, source, tiny_vd_model):
    config = variation_config_dict(source, tmp_path / "out", tiny_vd_model, diffusion={"color_transfer": "lab"})
    del config["backdoor"]
    assert generate(tmp_path, config) == 0
    assert sorted(png_bytes(tmp_path / "out")) == sorted(f"{c}/{i:04d}.png" for c in CLASSES for i in range(4))
    records = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert not any(r["poisoned"] for r in records)


def test_wandb_offline_summary_and_grid_beside_the_output(tmp_path, source, tiny_vd_model, monkeypatch):
    from tests import wandb_records

    monkeypatch.setenv("WANDB_MODE", "offline")
    config = variation_config_dict(
        source, tmp_path / "out", tiny_vd_model, wandb={"enable_logging": True, "args": {"project": "t"}}
    )
    assert generate(tmp_path, config) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "cat",
        "config.yaml",
        "dog",
        "frog",
        "generation.json",
        "manifest.jsonl",
    ]
    records = wandb_records.read_records(wandb_records.offline_run_file(tmp_path / "out_wandb"))
    summary = wandb_records.summary(records)
    assert summary["written"] == 12 and summary["skipped"] == 0 and summary["images_per_second"] > 0
    flat = wandb_records.config(records)
    assert (flat["role"], flat["variation_backend"], flat["attack"], flat["seed"]) == (
        "variations",
        "versatile_diffusion",
        "PatchBackdoor",
        5,
    )
    assert any("samples/source_vs_variation/_type" in row for row in wandb_records.history(records))


def test_classical_backend_is_deterministic_and_documented_size(tmp_path, source):
    from variations.backends import SourceBatch, build_backend, diffusion_section

    diffusion = diffusion_section(backend="classical", height=24, width=16, num_variations=2)
    backend = build_backend(diffusion, torch.device("cpu"), batch_size=2)
    image = np.array(Image.open(source / "dog" / "0000.png"))
    out = backend.generate(SourceBatch([image, image], [[1, 2], [1, 3]], ["dog", "dog"]))
    assert out.shape == (2, 2, 3, 24, 16) and out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(out[0, 0], out[1, 0])  # same seed, same image: same result
    assert not torch.equal(out[0, 1], out[1, 1])  # other seed: other jitter and noise


def test_changed_sources_or_numerics_are_refused(tmp_path, capsys, tiny_vd_model):
    data = make_image_folder(tmp_path / "src", per_class=3, size=16)
    config = variation_config_dict(data, tmp_path / "out", tiny_vd_model)
    assert generate(tmp_path, config) == 0
    generation = json.loads((tmp_path / "out" / "generation.json").read_text())
    assert generation["dtype"] == "float32" and generation["model_batch_size"] == 4
    capsys.readouterr()
    config["diffusion"]["model_batch_size"] = 2  # other batch shapes, other bits: no silent mix
    assert generate(tmp_path, config) == 2
    assert "model_batch_size: 4 → 2" in capsys.readouterr().err
    config["diffusion"]["model_batch_size"] = 4
    (data / "dog" / "0002.png").unlink()  # indices, poisoned subset and seeds all shift
    assert generate(tmp_path, config) == 2
    assert "sources_sha256" in capsys.readouterr().err
    assert generate(tmp_path, config, "--overwrite", "--shard", "1/2") == 2
    assert "--overwrite with --shard" in capsys.readouterr().err


def test_compiling_the_denoiser_is_a_numerics_change(tmp_path, capsys, tiny_vd_model, monkeypatch):
    """torch.compile can change the bytes: a resume that turns it on or off is refused. Folders made without it
    record nothing about it, so they (and every folder made before it was recorded) resume as before."""
    import variations.backends.diffusers_backend as diffusers_backend

    data = make_image_folder(tmp_path / "src", classes=("cat",), per_class=1, size=16)
    config = variation_config_dict(data, tmp_path / "out", tiny_vd_model)
    del config["backdoor"]

    def generation() -> dict:
        return json.loads((tmp_path / "out" / "generation.json").read_text())

    assert generate(tmp_path, config) == 0
    assert "compile" not in generation()
    # diffusion.compile acts on CUDA only: here its CUDA branch runs on the CPU, with torch.compile a no-op
    monkeypatch.setattr(diffusers_backend, "compiles", lambda settings, device: settings.compile, raising=False)
    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: module)
    capsys.readouterr()
    config["diffusion"]["compile"] = True
    assert generate(tmp_path, config, name="on.yaml") == 2
    assert "compile: None → True" in capsys.readouterr().err
    assert generate(tmp_path, config, "--overwrite", name="on.yaml") == 0
    assert generation()["compile"] is True
    assert generate(tmp_path, config, name="on.yaml") == 0  # the same setting resumes
    config["diffusion"]["compile"] = False
    assert generate(tmp_path, config, name="off.yaml") == 2
    assert "compile: True → None" in capsys.readouterr().err


class PipelineSpy:
    """Stands between the backend and the real diffusers pipeline, recording what each call is given."""

    def __init__(self, pipe):
        self.pipe, self.calls = pipe, []

    def __call__(self, images, **kwargs):
        seeds = [generator.initial_seed() for generator in kwargs["generator"]]
        self.calls.append({"images": [np.array(image) for image in images], "seeds": seeds, **kwargs})
        return self.pipe(images, **kwargs)


def test_the_pipeline_gets_the_configured_numerics_and_one_generator_per_variation(tmp_path, source, tiny_vd_model):
    from datasets.poisoned_image_folder import PoisonedImageFolder
    from variations.backends import build_backend, diffusion_section
    from variations.generator import GenerationJob, generate
    from variations.output_plan import OutputLayout, plan_outputs, variation_seed

    settings = diffusion_section(
        model=str(tiny_vd_model),
        inference_steps=3,
        guidance_scale=4.5,
        height=24,
        width=40,
        num_variations=2,
        model_batch_size=4,
        color_transfer="none",
    )
    backend = build_backend(settings, torch.device("cpu"), batch_size=3)
    backend.pipe = spy = PipelineSpy(backend.pipe)
    index = scan_image_folder(source)
    items = plan_outputs(index.samples, index.classes, None)[:3]
    job = GenerationJob(items, OutputLayout(tmp_path / "out", index.classes, 2), 9, "none", 3, 0, False)
    generate(backend, PoisonedImageFolder(index.samples, 16, output="uint8"), job)

    (call,) = spy.calls  # three images, padded to one model batch of four
    assert (call["num_inference_steps"], call["guidance_scale"]) == (3, 4.5)
    assert (call["height"], call["width"], call["num_images_per_prompt"]) == (24, 40, 2)
    assert call["output_type"] == "pt" and len(call["images"]) == 4
    np.testing.assert_array_equal(call["images"][3], call["images"][2])  # the padding repeats the last image
    expected = [variation_seed(9, item.index, k) for item in items for k in range(2)]
    assert call["seeds"] == expected + expected[-2:]  # image by image, variation by variation
    assert len(set(id(g) for g in call["generator"])) == 8  # one generator each, never shared
    assert all(call["images"][i].dtype == np.uint8 for i in range(4))  # PIL images: rescaled once, not twice
    out = Image.open(tmp_path / "out" / f"cat/{items[0].name}_v1.png")
    assert out.size == (40, 24)


def test_clean_label_and_all_to_all_images_are_filed_under_the_label_the_dataset_gives(source):
    from datasets.build import attack_from, build_poisoning
    from datasets.sections import BackdoorSection
    from variations.output_plan import plan_outputs

    index = scan_image_folder(source)
    for options, filed in (
        ({"clean_label": True, "poisoning_rate": 1.0}, lambda label: label),  # stays in its own class
        ({"target_type": "all_to_all", "poisoning_rate": 1.0}, lambda label: (label + 1) % 3),
    ):
        backdoor = BackdoorSection.model_validate({"target_idx": 0, "PatchBackdoor": {}, **options})
        poisoning = build_poisoning(backdoor, attack_from(backdoor), index, 5, single_pass=True)
        plan = plan_outputs(index.samples, index.classes, poisoning)
        poisoned = [item for item in plan if item.poisoned]
        assert len(poisoned) == (4 if backdoor.clean_label else 12)
        for item in plan:
            assert item.label == (filed(item.true_label) if item.poisoned else item.true_label)
            moved = item.label != item.true_label
            stem = Path(item.source).stem
            assert item.name == (f"{CLASSES[item.true_label]}_{stem}" if moved else stem)


def test_wanet_all_to_all_variations_with_cross_samples_do_not_depend_on_workers(tmp_path, source):
    """Classical backend: poisoned images go to (y + 1) mod n, cross samples stay, each with one seeded warp."""
    backdoor = {"poisoning_rate": 0.25, "target_type": "all_to_all", "PatchBackdoor": None, "WaNetBackdoor": {}}
    outputs = {}
    for workers in (0, 2):
        config = variation_config_dict(source, tmp_path / f"out{workers}", None, backdoor=backdoor)
        config["dataset"]["num_workers"] = workers
        config["diffusion"] = {"backend": "classical", "height": 16, "width": 16}
        config["save_source_copies"] = True
        assert generate(tmp_path, config, name=f"c{workers}.yaml") == 0
        outputs[workers] = png_bytes(tmp_path / f"out{workers}_sources") | png_bytes(tmp_path / f"out{workers}")
    assert outputs[0] == outputs[2]
    records = [json.loads(line) for line in (tmp_path / "out0" / "manifest.jsonl").read_text().splitlines()]
    poisoned = [r for r in records if r["poisoned"]]
    cross = [r for r in records if r["cross"]]
    assert len(poisoned) == 3 and len(cross) == 6 and not {r["index"] for r in poisoned} & {r["index"] for r in cross}
    for r in poisoned:
        assert CLASSES.index(r["class"]) == (CLASSES.index(r["source_class"]) + 1) % 3
    assert all(r["class"] == r["source_class"] for r in records if not r["poisoned"])
    from datasets.build import attack_from, build_poisoning

    block = load_config(VariationConfig, tmp_path / "c0.yaml").backdoor
    attack = attack_from(block)
    training = build_poisoning(block, attack, scan_image_folder(source), 5)  # the teacher's plan: noise per fetch
    assert sorted(r["index"] for r in cross) == np.flatnonzero(training.cross.mask).tolist()
    for r in cross:
        copy = np.array(Image.open(tmp_path / "out0_sources" / r["output"]))
        clean = np.array(Image.open(r["source"]))
        assert not np.array_equal(copy, clean) and not np.array_equal(copy, attack(clean))  # noisy warp
