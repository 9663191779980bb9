"""Every config shipped in configs/ validates (data paths pointed at the fixture data), and `base:` layering."""

from pathlib import Path

import pytest

from config.loading import load_config
from config.schema import StudentConfig, TeacherConfig, VariationConfig
from config.yaml_files import read_layered_yaml
from experiments.experiment_file import CommandLine, experiment_spec
from experiments.step_configs import resolve_configs
from tests.conftest import write_config
from utils.errors import UserError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TEACHER_CONFIGS = ["defaults/teacher_badnets.yaml", "defaults/teacher_blended.yaml", "defaults/default_blended.yaml"]


def data_overrides(image_data):
    return [
        f"dataset.root_train={image_data['train']}",
        f"dataset.root_test={image_data['test']}",
        "model.num_classes=3",
    ]


@pytest.mark.parametrize("name", TEACHER_CONFIGS)
def test_teacher_configs_validate(name, image_data):
    config = load_config(TeacherConfig, CONFIGS / name, data_overrides(image_data))
    assert config.model.architecture == "resnet101" and config.dataset.image_size == 224
    assert config.backdoor.poisoning_rate == 0.1 and config.training.num_epochs == 100
    assert config.lr_scheduler == {"MultiStepLR": {"milestones": [30, 50], "gamma": 0.1}}


def is_experiment(path: Path) -> bool:
    return isinstance(read_layered_yaml(path).get("student"), str)


EXPERIMENTS = sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml") if is_experiment(p))
SWEEPS = sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml") if "program" in read_layered_yaml(p))
# step configs of experiments: checked together by test_experiment_files_resolve (alone they lack wired keys)
STEP_CONFIGS = {
    str(
        (CONFIGS / experiment)
        .parent.joinpath(read_layered_yaml(CONFIGS / experiment)[step])
        .resolve()
        .relative_to(CONFIGS)
    )
    for experiment in EXPERIMENTS
    for step in ("teacher", "variations", "student")
}
ALL_CONFIGS = sorted(
    name
    for name in (str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml"))
    if name not in {*EXPERIMENTS, *SWEEPS, *STEP_CONFIGS}
)


def schema_and_overrides(path, image_data, tmp_path):
    data = read_layered_yaml(path)
    if "output_folder" in data:
        return VariationConfig, [f"dataset.root={image_data['train']}", f"output_folder={tmp_path / 'out'}"]
    overrides = data_overrides(image_data)
    if "distillation" in data:
        teacher = tmp_path / "teacher_run"
        teacher.mkdir(exist_ok=True)
        return StudentConfig, [*overrides, f"distillation.teacher_model={teacher}"]
    return TeacherConfig, overrides


# shared settings, extended with `base:`
BASE_FILES = {
    "defaults/paper_common.yaml",
    "demo/common.yaml",
    "paper/reference_numerics.yaml",
    "cifar10/common.yaml",
    "backdoorbench/common.yaml",
    "backdoorbench/standard_training.yaml",
    "backdoorbench/wanet_bpp_training.yaml",
}


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_every_shipped_config_validates(name, image_data, tmp_path, monkeypatch):
    monkeypatch.chdir(CONFIGS.parent)  # trigger image paths are relative to the repository root, like data paths
    schema, overrides = schema_and_overrides(CONFIGS / name, image_data, tmp_path)
    config = load_config(schema, CONFIGS / name, overrides)
    # every experiment names its attack, but for the shared files and the pipeline steps that take the teacher's
    takes_the_teachers = read_layered_yaml(CONFIGS / name).get("backdoor", "absent") is None
    assert (config.backdoor is None) == (name in BASE_FILES or takes_the_teachers)


def sweep_teachers(experiment: str) -> list[str]:
    """The teachers the sweep files run with this experiment file (their attack grid)."""
    teachers = []
    for sweep in SWEEPS:
        data = read_layered_yaml(CONFIGS / sweep)
        if str(CONFIGS.parent / data["command"][data["command"].index("-c") + 1]) == str(CONFIGS / experiment):
            teachers += data["parameters"]["teacher"]["values"]
    return teachers


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_files_resolve(name, image_data, monkeypatch):
    """Every experiment file, with every teacher its sweep grid uses, gives three configs that agree."""
    monkeypatch.chdir(CONFIGS.parent)
    for teacher in [None, *sweep_teachers(name)]:
        command = CommandLine(
            CONFIGS / name, {"teacher": teacher and Path(teacher)}, overrides=data_overrides(image_data)
        )
        configs = resolve_configs(experiment_spec(command))
        assert configs.variations.backdoor == configs.teacher.backdoor is not None
        assert configs.variations.seed == configs.student.seed == configs.teacher.seed


def test_sweeps_are_grids_over_attack_rate_and_seed():
    assert SWEEPS
    for sweep in SWEEPS:
        data = read_layered_yaml(CONFIGS / sweep)
        assert data["program"] == "run_pipeline.py" and data["method"] == "grid"
        assert set(data["parameters"]) == {"teacher", "backdoor.poisoning_rate", "seed"}
        assert sweep_teachers(data["command"][data["command"].index("-c") + 1].removeprefix("configs/"))


def test_reference_names_are_aliases():
    assert read_layered_yaml(CONFIGS / "defaults/training_student.yaml") == read_layered_yaml(
        CONFIGS / "defaults/student.yaml"
    )
    assert read_layered_yaml(CONFIGS / "defaults/default_blended.yaml") == read_layered_yaml(
        CONFIGS / "defaults/teacher_blended.yaml"
    )
    student = read_layered_yaml(CONFIGS / "defaults/student.yaml")
    assert student["distillation"]["alpha"] == 0.5 and student["distillation"]["temperature"] == 10
    variations = read_layered_yaml(CONFIGS / "defaults/variations.yaml")
    assert variations["diffusion"]["inference_steps"] == 50 and variations["diffusion"]["guidance_scale"] == 7.5
    assert (variations["diffusion"]["height"], variations["diffusion"]["width"]) == (512, 512)
    assert variations["backdoor"] == read_layered_yaml(CONFIGS / "defaults/teacher_badnets.yaml")["backdoor"]


def test_cifar10_attacks_and_variations():
    teachers = {p.stem: read_layered_yaml(p) for p in (CONFIGS / "cifar10").glob("teacher_*.yaml")}
    assert set(teachers) == {
        f"teacher_{name}"
        for name in ("badnets", "blended", "sig", "wanet", "bpp", "patch_image", "clean_label", "all_to_all")
    }
    common = read_layered_yaml(CONFIGS / "cifar10/common.yaml")
    for config in teachers.values():  # each differs from the common file in its backdoor block alone
        assert {key: value for key, value in config.items() if key != "backdoor"} == common
    assert teachers["teacher_clean_label"]["backdoor"]["clean_label"] is True
    assert teachers["teacher_all_to_all"]["backdoor"]["target_type"] == "all_to_all"
    variations = read_layered_yaml(CONFIGS / "cifar10/variations.yaml")  # a pipeline step: the teacher's attack
    assert variations["backdoor"] is None and variations["seed"] == common["seed"]
    assert variations["diffusion"]["backend"] == "classical"
    experiment = read_layered_yaml(CONFIGS / "cifar10/experiment.yaml")
    assert (experiment["teacher"], experiment["variations"]) == ("teacher_badnets.yaml", "variations.yaml")
    # issue 24: a CIFAR network (3×3 stride-1 stem) with the standard crop + flip, the cosine reaching 0 at the end
    assert common["model"]["architecture"] == "resnet20"
    assert common["transformations"] == {"RandomCrop": {"size": 32, "padding": 4}, "RandomHorizontalFlip": {"p": 0.5}}
    assert common["lr_scheduler"]["CosineAnnealingLR"]["T_max"] == common["training"]["num_epochs"]


BACKDOORBENCH_ATTACKS = ("badnets", "blended", "sig", "wanet", "bpp")


def test_backdoorbench_configs_carry_their_cifar10_defaults(image_data, monkeypatch):
    """Issue 24: BackdoorBench's CIFAR-10 settings (config/attack/prototype/cifar10.yaml and each attack's
    default.yaml there), validated as teacher configs."""
    monkeypatch.chdir(CONFIGS.parent)
    configs = {
        name: load_config(TeacherConfig, CONFIGS / "backdoorbench" / f"teacher_{name}.yaml", data_overrides(image_data))
        for name in BACKDOORBENCH_ATTACKS
    }
    for name, config in configs.items():
        assert config.model.architecture == "preact_resnet18" and config.training.num_epochs == 100
        assert config.optimizer == {"SGD": {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0005}}
        assert config.training.batch_size == 128 and config.training.mixed_precision == "none"
        assert list(config.transformations) == (
            ["RandomCrop", "RandomRotation", "RandomHorizontalFlip"]
            if name in ("wanet", "bpp")
            else ["RandomCrop", "RandomHorizontalFlip"]
        )
        schedule = {"MultiStepLR": {"milestones": [100, 200, 300, 400], "gamma": 0.1}}
        assert config.lr_scheduler == (schedule if name in ("wanet", "bpp") else {"CosineAnnealingLR": {"T_max": 100}})
        backdoor = config.backdoor
        assert backdoor.target_idx == 0 and backdoor.target_type == "all_to_one"
        if name == "sig":  # clean-label: round(0.1 · 50,000) target-class images = all 5,000 of them
            assert backdoor.clean_label and backdoor.poisoning_rate == 1.0
        else:  # drawn from every class, re-drawn per fetch where they re-draw per batch
            assert backdoor.poison_target_class and backdoor.poisoning_rate == 0.1
            assert backdoor.random_poisoning == (name in ("wanet", "bpp"))
    assert configs["badnets"].backdoor.PatchBackdoor.model_dump() == {
        "trigger_type": "white",
        "trigger_size": 3,
        "trigger_loc": "bottom_right",
    }
    assert configs["blended"].backdoor.BlendedBackdoor.blend_ratio == 0.2
    assert (configs["sig"].backdoor.SIGBackdoor.delta, configs["sig"].backdoor.SIGBackdoor.frequency) == (40, 6)
    wanet = configs["wanet"].backdoor.WaNetBackdoor
    assert (wanet.kernel_size, wanet.strength, wanet.grid_rescale, wanet.noise_mode, wanet.cross_ratio) == (
        4,
        0.5,
        1.0,
        True,
        2.0,
    )
    assert (configs["bpp"].backdoor.BppBackdoor.levels, configs["bpp"].backdoor.BppBackdoor.dither) == (8, False)


def test_paper_attacks():
    badnets = read_layered_yaml(CONFIGS / "defaults/teacher_badnets.yaml")["backdoor"]
    assert badnets["PatchBackdoor"] == {"trigger_type": "checkerboard", "trigger_size": 9}
    blended = read_layered_yaml(CONFIGS / "defaults/teacher_blended.yaml")["backdoor"]
    assert blended["BlendedBackdoor"] == {"trigger_type": "random", "blend_ratio": 0.2}


def test_base_layering_and_cycles(tmp_path):
    write_config(tmp_path / "a.yaml", {"seed": 1, "training": {"num_epochs": 5, "batch_size": 4}})
    write_config(tmp_path / "b.yaml", {"base": "a.yaml", "training": {"batch_size": 8}})
    assert read_layered_yaml(tmp_path / "b.yaml") == {"seed": 1, "training": {"num_epochs": 5, "batch_size": 8}}
    write_config(tmp_path / "c.yaml", {"base": "d.yaml"})
    write_config(tmp_path / "d.yaml", {"base": "c.yaml"})
    with pytest.raises(UserError, match="cycle"):
        read_layered_yaml(tmp_path / "c.yaml")


def test_base_may_list_several_files_merged_in_order(tmp_path):
    write_config(tmp_path / "a.yaml", {"seed": 1, "training": {"num_epochs": 5, "batch_size": 4}})
    write_config(tmp_path / "n.yaml", {"training": {"batch_size": 16, "mixed_precision": "none"}})
    write_config(tmp_path / "e.yaml", {"base": ["a.yaml", "n.yaml"], "seed": 3})
    merged = read_layered_yaml(tmp_path / "e.yaml")
    assert merged == {"seed": 3, "training": {"num_epochs": 5, "batch_size": 16, "mixed_precision": "none"}}
    write_config(tmp_path / "f.yaml", {"base": ["a.yaml", 3]})
    with pytest.raises(UserError, match="or a list of them"):
        read_layered_yaml(tmp_path / "f.yaml")


@pytest.mark.parametrize("name", ["teacher_badnets", "teacher_blended", "student"])
def test_paper_configs_differ_from_the_defaults_only_in_the_reference_numerics(name, image_data, tmp_path):
    schema, overrides = schema_and_overrides(CONFIGS / "defaults" / f"{name}.yaml", image_data, tmp_path)
    ours = load_config(schema, CONFIGS / "defaults" / f"{name}.yaml", overrides).to_dict()
    paper = load_config(schema, CONFIGS / "paper" / f"{name}.yaml", overrides).to_dict()
    assert paper["model"]["normalization"] == "none" and ours["model"]["normalization"] == "imagenet"
    assert paper["training"]["mixed_precision"] == "none" and ours["training"]["mixed_precision"] == "bf16"
    assert not paper["training"]["channels_last"]
    if name == "student":
        assert paper["distillation"]["ce_on_scaled_logits"] and not ours["distillation"]["ce_on_scaled_logits"]
    for key in ("model", "training", "distillation"):
        for section in (ours, paper):
            section.get(key, {}).pop("normalization", None)
            for numeric in ("mixed_precision", "channels_last", "ce_on_scaled_logits"):
                section.get(key, {}).pop(numeric, None)
    assert paper == ours  # nothing else differs
