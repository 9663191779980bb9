"""The README's and the docs site's commands run as written (with data and size overrides appended), the
configuration reference documents every key, and the site builds with ``mkdocs build --strict``."""

import contextlib
import io
import json
import re
import runpy
import shlex
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from config.errors import section_models
from config.schema import StudentConfig, TeacherConfig, VariationConfig
from experiments.experiment_file import ExperimentFile
from tests.conftest import REPO, SHARED_DATA, free_port, make_image_folder, script_env

README = (REPO / "README.md").read_text()
DOCS = REPO / "docs"
PAGES = sorted(p for p in DOCS.glob("*.md"))  # docs/_incoming/ holds drafts outside the site
CONFIG_REFERENCE = (DOCS / "configuration.md").read_text()


def bash_commands() -> list[str]:
    """Every command of a ``bash`` block in the README and the docs site, each once, README first."""
    commands = []
    for text in [README, *(page.read_text() for page in PAGES)]:
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
            for command in block.replace("\\\n", " ").splitlines():
                command = command.split("  #")[0].strip()
                if command and not command.startswith("#") and command not in commands:
                    commands.append(command)
    return commands


def key_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every leaf key of a schema; a section that is one of several (backends) contributes all of theirs."""
    paths = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        members = [m for _, m in section_models(field.annotation)]
        flat = [a for a in typing.get_args(field.annotation) or (field.annotation,) if a is not type(None)]
        if members and len(members) >= len(flat):  # only sections (one, or one per backend)
            for member in members:
                paths += [p for p in key_paths(member, f"{path}.") if p not in paths]
        else:
            paths.append(path)
    return paths


@pytest.mark.parametrize("schema", [TeacherConfig, StudentConfig, VariationConfig, ExperimentFile])
def test_every_config_key_is_in_the_reference(schema):
    missing = [path for path in key_paths(schema) if f"`{path}`" not in CONFIG_REFERENCE]
    assert not missing, f"docs/configuration.md lacks {missing}"


def test_quick_start_and_demo_are_documented():
    commands = bash_commands()
    assert commands[:2] == ["make demo", "make test"]
    assert "demo_results/results.md" in README and "samples.png" in README


def test_readme_is_short_and_links_every_page_of_the_site():
    assert len(README.splitlines()) <= 200
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    in_nav = sorted(page for entry in nav for page in entry.values())
    assert in_nav == sorted(p.name for p in PAGES)
    assert all(f"(docs/{page})" in README for page in in_nav if page != "index.md")


def test_docs_site_builds_strictly(tmp_path):
    """Broken links, anchors and pages missing from the nav fail the build (mkdocs.yml: strict, validation)."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        env={**script_env(tmp_path), "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "configuration" / "index.html").is_file()
    broken = tmp_path / "broken"
    (broken / "docs").mkdir(parents=True)
    (broken / "docs" / "index.md").write_text("[a page that does not exist](nowhere.md)\n")
    (broken / "mkdocs.yml").write_text((REPO / "mkdocs.yml").read_text().split("nav:")[0])
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--site-dir", str(tmp_path / "broken_site")],
        cwd=broken,
        env={**script_env(tmp_path), "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "nowhere.md" in result.stderr


# --------------------------------------------------------------------------------------------- commands
SCRIPTS = ("train_teacher.py", "generate_variations.py", "train_student.py")


@pytest.fixture(scope="module")
def setting(tmp_path_factory, tiny_vd_model):
    tmp = tmp_path_factory.mktemp("readme")
    data = {
        "train": make_image_folder(tmp / "train", per_class=6),
        "test": make_image_folder(tmp / "test", per_class=3),
    }
    return {"tmp": tmp, "data": data, "model": tiny_vd_model, "counter": iter(range(1000))}


def overrides(script: str, setting, teacher: Path | None) -> list[str]:
    """Point a documented command at tiny data and a tiny model so it runs in seconds on a CPU."""
    tmp, data = setting["tmp"], setting["data"]
    n = next(setting["counter"])
    if script == "generate_variations.py":
        return [
            f"dataset.root={data['train']}",
            f"output_folder={tmp / f'variations_{n}'}",
            "dataset.image_size=32",
            "dataset.batch_size=4",
            "dataset.num_workers=0",
            f"diffusion.model={setting['model']}",
            "diffusion.height=32",
            "diffusion.width=32",
            "diffusion.inference_steps=2",
        ]
    common = [
        f"dataset.root_train={data['train']}",
        f"dataset.root_test={data['test']}",
        "dataset.image_size=32",
        "model.architecture=test_resnet",
        "model.num_classes=3",
        "training.num_epochs=1",
        "training.batch_size=8",
        "training.dataloader_num_workers=0",
        f"training.save_path={tmp / f'runs_{n}'}",
        "wandb.enable_logging=false",
    ]
    if script == "train_student.py":
        common.append(f"distillation.teacher_model={teacher}")
    return common


def to_argv(command: str) -> list[str]:
    words = shlex.split(command)
    if words[0] == "torchrun":
        words = [sys.executable, "-m", "torch.distributed.run", *words[1:]]
        if "--rdzv_endpoint" not in words:  # a free port instead of the default 29500: parallel runs never meet
            words[3:3] = ["--master_port", str(free_port())]
        if "--nnodes" in words:  # the two-node example, run as one node on this machine: same flags
            words[words.index("--nnodes") + 1] = "1"
            words[words.index("--nproc_per_node") + 1] = "2"
            words[words.index("--rdzv_endpoint") + 1] = f"localhost:{free_port()}"
    elif words[0] == "python":
        words[0] = sys.executable
    return words


def script_of(command: str) -> str | None:
    return next((s for s in SCRIPTS if s in command.split()), None)


SCRIPT_COMMANDS = [c for c in bash_commands() if script_of(c)]


def run_documented(command: str, setting, teacher: Path | None) -> tuple[int, str]:
    """Exit code and stderr of ``command`` with the tiny overrides. ``python SCRIPT`` runs the script in this
    process, as ``__main__`` with its argv and the scripts' environment (the same code path, without paying the
    interpreter start-up and imports each time); ``torchrun`` commands start their processes for real."""
    script = script_of(command)
    argv = [*to_argv(command), "--set", *overrides(script, setting, teacher)]
    if argv[1] == "-m":  # torchrun, as python -m torch.distributed.run
        result = subprocess.run(
            argv, cwd=REPO, env=script_env(setting["tmp"]), capture_output=True, text=True, timeout=600
        )
        return result.returncode, result.stderr
    errors = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(errors):
        patch.chdir(REPO)
        patch.setattr(sys, "argv", argv[1:])
        for name, value in script_env(setting["tmp"]).items():
            patch.setenv(name, value)
        try:
            runpy.run_path(str(REPO / argv[1]), run_name="__main__")
            code = 0
        except SystemExit as done:
            code = done.code
    return code, errors.getvalue()


@pytest.fixture(scope="module")
def readme_teacher(setting) -> Path:
    """The run directory of the first documented teacher command: what the student commands distil."""
    command = next(c for c in SCRIPT_COMMANDS if script_of(c) == "train_teacher.py" and c.startswith("python"))
    code, errors = run_documented(command, setting, None)
    assert code == 0, f"{command}\n{errors[-3000:]}"
    (teacher,) = (setting["tmp"] / "runs_0").iterdir()
    return teacher


def test_every_script_is_documented_with_its_commands():
    assert len(SCRIPT_COMMANDS) == 13  # 4 teacher (one --print-config), 3 variation, 3 student, 3 torchrun
    assert {script_of(c) for c in SCRIPT_COMMANDS} == set(SCRIPTS)


@pytest.mark.parametrize("command", SCRIPT_COMMANDS, ids=[f"{i}-{script_of(c)}" for i, c in enumerate(SCRIPT_COMMANDS)])
def test_script_command_runs(command, setting, readme_teacher):
    teacher = readme_teacher if script_of(command) == "train_student.py" else None
    code, errors = run_documented(command, setting, teacher)
    assert code == 0, f"{command}\n{errors[-3000:]}"


BENCHMARK_ARGS = {  # appended to the documented commands: the smallest meaningful run ({tmp}: a fresh folder)
    "benchmarks.teacher_throughput": ["--images", "32", "--batch-size", "16", "--architecture", "test_resnet"],
    # every backend runs in tests/test_backends.py; here one of each loading path (one pipeline, two)
    "benchmarks.variation_throughput": [
        "--backends",
        "versatile_diffusion",
        "kandinsky22",
        "--images",
        "2",
        "--batch-sizes",
        "2",
        "--schedules",
        "default:2",
        "--num-workers",
        "0",
    ],
    "benchmarks.ddp_throughput": ["--images-per-class", "4", "--batch-size", "8", "--architecture", "test_resnet"],
    "benchmarks.checkpoint_cost": ["--images", "32", "--batch-size", "16", "--saves", "1", "--epochs", "2"],
    "benchmarks.cifar10_evidence": [
        *("--out", "{tmp}/evidence", "--per-class", "4", "--test-per-class", "2", "--detect"),
        *("--set", "training.num_epochs=1", "model.architecture=test_resnet"),
    ],
}
BENCHMARK_OUTPUT = {"benchmarks.cifar10_evidence": "|  | student on classical | "}  # else a JSON line


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"benchmarks read CIFAR-10 from {SHARED_DATA}, absent here")
def test_benchmark_commands_run(tmp_path):
    commands = [c for c in bash_commands() if c.startswith("python -m benchmarks.")]
    assert {c.split()[2] for c in commands} == set(BENCHMARK_ARGS)
    for command in commands:
        name = command.split()[2]
        argv = [*to_argv(command), *(arg.format(tmp=tmp_path) for arg in BENCHMARK_ARGS[name])]
        result = subprocess.run(argv, cwd=REPO, env=script_env(tmp_path), capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
        if name in BENCHMARK_OUTPUT:
            assert BENCHMARK_OUTPUT[name] in result.stdout
        else:
            assert json.loads(result.stdout.strip().splitlines()[-1])  # a JSON line of figures


def documented(prefix: str) -> list[str]:
    (command,) = [c for c in bash_commands() if c.startswith(prefix)]
    return to_argv(command)


def test_sticker_trigger_is_what_its_documented_command_draws(tmp_path):
    argv = documented("python -m demo.sticker")
    assert argv[-1] == "configs/cifar10/triggers/sticker.png"
    subprocess.run([*argv[:-1], str(tmp_path / "sticker.png")], cwd=REPO, check=True, timeout=120)
    assert (tmp_path / "sticker.png").read_bytes() == (REPO / argv[-1]).read_bytes()


def test_attack_pictures_are_what_their_documented_command_draws(tmp_path):
    argv = documented("python -m demo.attack_gallery")
    out = argv.index("--out") + 1
    committed = REPO / argv[out]
    argv[out] = str(tmp_path / "attacks")
    if not SHARED_DATA.is_dir():  # without CIFAR-10 the command still runs, on generated images
        argv[argv.index("--data") + 1] = str(make_image_folder(tmp_path / "data", size=32))
    subprocess.run(argv, cwd=REPO, check=True, timeout=300, capture_output=True)
    drawn = sorted(p.name for p in (tmp_path / "attacks").iterdir())
    assert drawn == sorted(p.name for p in committed.iterdir()) and len(drawn) == 7
    if SHARED_DATA.is_dir():
        for name in drawn:
            assert (tmp_path / "attacks" / name).read_bytes() == (committed / name).read_bytes(), name


def test_demo_runs_end_to_end_in_miniature(tmp_path):
    """`make demo` is `python -m demo`; here with 1 epoch and a handful of images per class."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "demo",
            "--epochs",
            "1",
            "--train-per-class",
            "6",
            "--test-per-class",
            "3",
            "--data",
            str(tmp_path / "demo_data"),
            "--out",
            str(tmp_path / "demo_results"),
        ],
        cwd=REPO,
        env=script_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "demo_results"
    results = (out / "results.md").read_text()
    assert "student on classical variations" in results and "student on clean training images" in results
    assert "student on diffusion variations (demo DDPM, SDEdit strength 0.25)" in results
    assert "CLASSICAL BASELINE" in result.stdout
    assert "target class **circle**" in results and "(chance level) is **10.0 %**" in results  # 10 classes
    assert "every model trained for 1 epoch\n" in results and "/teacher/" in results
    models = json.loads((out / "results.json").read_text())["models"]
    assert list(models) == [
        "teacher",
        "student_classical",
        "student_diffusion",
        "student_diffusion_cleaned",
        "student_clean",
    ]
    assert json.loads((out / "results.json").read_text())["variation_backend"] == "classical"
    assert all(0 <= m["clean_accuracy"] <= 1 for m in models.values())
    assert "student on the same diffusion variations, flagged images dropped (detection)" in results
    assert "## Which training images are poisoned?" in results and "Spectral Signatures" in results
    detection = json.loads((out / "results.json").read_text())["detection"]
    assert list(detection["rows"])[:2] == [
        "teacher on source vs. classical variation",
        "teacher on source vs. diffusion variation",
    ]
    (setting,) = (out / "experiments").iterdir()  # one teacher and one clean student serve both variation models
    assert sorted(p.name for p in setting.iterdir()) == ["classical", "clean_student", "ddpm_sdedit", "teacher"]
    assert (setting / "classical" / "detection" / "score_histogram.png").is_file()
    assert (setting / "ddpm_sdedit" / "cleaned_variations_drop" / "config.yaml").is_file()
    from PIL import Image

    with Image.open(out / "samples.png") as samples:
        assert samples.size[1] > 4 * 32  # four rows: clean, triggered, classical, diffusion variation
