"""Many settings of one experiment file side by side: every attack (a teacher config) × every variation config,
trained on a class-balanced range of a training set, with one table of clean accuracy and attack success per
model, one of detection per detector, a picture of them, one of each attack's poisoned images and their variations
(``benchmarks/cifar10_evidence.py`` is the command).

The settings run through :func:`experiments.pipeline.run_experiment`, so each is exactly what ``run_pipeline.py``
would make of it, with the same folders, skipping and resuming.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from datasets.image_folder import class_range, scan_image_folder
from datasets.previews import samples_figure
from detection.outputs import SUMMARY_NAME as DETECTION_SUMMARY
from experiments.experiment_file import CommandLine, ExperimentSpec, experiment_spec
from experiments.pipeline import flat_results, run_experiment, setting_complete
from experiments.trigger_screen import VariationSpec
from utils.atomic_io import atomic_directory, atomic_path, atomic_write_json, atomic_write_text
from utils.report import markdown_table

log = logging.getLogger(__name__)

METRICS = ("clean_accuracy", "attack_success_rate", "robust_accuracy")
SHARED_MODELS = {"teacher": "teacher", "clean_student": "student on clean images"}  # one per attack
VARIANT_MODELS = {"student": "student on {}", "cleaned_student": "cleaned student on {}"}  # one per variation config
DETECTORS = {"variations": "variations", "spectral_signatures": "spectral signatures", "activation_clustering": "AC"}


@dataclass(frozen=True)
class EvidencePlan:
    experiment: Path  # the experiment file: the student config and the output layout
    teachers: dict[str, Path]  # attack name → teacher config
    variations: list[str]  # variation configs, PATH[:key=value,...]
    data: Path  # holds train/ and test/
    first: int  # first training image of each class
    per_class: int  # training images per class
    out: Path
    test_per_class: int | None = None  # the first N test images per class (a pilot); None: the whole test set
    clean_student: bool = False
    detection: bool = False
    cleaned_student: str | None = None
    overrides: list[str] = field(default_factory=list)  # for every setting
    command: str = ""  # how the plan was asked for, for the tables' header


def subset_folder(source: Path, first: int, per_class: int, folder: Path) -> Path:
    """``folder``: links to images ``first`` … ``first + per_class − 1`` of every class of ``source`` (ImageFolder
    order), made once and atomically; the images themselves are not copied."""
    if folder.is_dir():
        return folder
    index = scan_image_folder(source)
    with atomic_directory(folder) as tmp:
        for name, paths in zip(index.classes, class_range(index, first, per_class), strict=True):
            (tmp / name).mkdir()
            for path in paths:
                (tmp / name / Path(path).name).symlink_to(Path(path).resolve())
    log.info("%s: %d images per class from image %d of %s", folder, per_class, first, source)
    return folder


def data_folders(plan: EvidencePlan) -> tuple[Path, Path]:
    """The training and test folders of every setting: the plan's ranges of ``data/train`` and ``data/test``."""
    last = plan.first + plan.per_class - 1
    train = subset_folder(
        plan.data / "train", plan.first, plan.per_class, plan.out / "data" / f"train_{plan.first}-{last}"
    )
    test = plan.data / "test"
    if plan.test_per_class is not None:
        folder = plan.out / "data" / f"test_0-{plan.test_per_class - 1}"
        test = subset_folder(test, 0, plan.test_per_class, folder)
    return train, test


def detection_figures(folder: Path | None) -> dict | None:
    """AUROC, TPR at 5 % FPR and the flagged count of each detector, from the setting's ``detection.json``."""
    if folder is None or not (folder / DETECTION_SUMMARY).is_file():
        return None
    summary = json.loads((folder / DETECTION_SUMMARY).read_text())
    figures = {"num_poisoned": summary.get("num_poisoned"), "num_images": summary["num_images"]}
    for name, detector in summary["detectors"].items():
        metrics = detector.get("metrics") or {}
        figures[name] = {
            "auroc": metrics.get("auroc"),
            "tpr_at_5pct_fpr": metrics.get("tpr_at_5pct_fpr"),
            "flagged": detector["flagged"],
        }
    return figures


def setting_spec(plan: EvidencePlan, attack: str, variations: str, data: tuple[Path, Path]) -> ExperimentSpec:
    """The ``run_pipeline.py`` setting of one (attack, variation config) pair."""
    spec = VariationSpec.parse(variations)
    command = CommandLine(
        experiment=plan.experiment,
        configs={"teacher": plan.teachers[attack], "variations": spec.path},
        output=plan.out,
        clean_student=plan.clean_student,
        overrides=[
            f"dataset.root_train={data[0]}",
            f"dataset.root_test={data[1]}",
            *plan.overrides,
            *(f"variations.{override}" for override in spec.overrides),
        ],
        detection=plan.detection,
        cleaned_student=plan.cleaned_student,
    )
    return experiment_spec(command)


def run_setting(spec: ExperimentSpec, attack: str, variations: str, teacher_only: bool = False) -> dict:
    """Run (or find finished) the setting ``spec`` of (attack, variation config); its row of figures."""
    result = run_experiment(spec, teacher_only=teacher_only)
    if teacher_only:
        return {"attack": attack, "variations": "", "setting": str(result.folder), **model_figures(result.summaries)}
    return {
        "attack": attack,
        "variations": result.run_dirs["variations"].parent.name,  # the variant's folder: backend[-what differs]
        "variation_config": variations,
        "setting": str(result.folder),
        "teacher_run": str(result.run_dirs["teacher"]),
        "variations_folder": str(result.run_dirs["variations"]),
        **model_figures(result.summaries),
        "detection": detection_figures(result.run_dirs.get("detection")),
    }


def percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def model_figures(summaries: dict[str, dict]) -> dict:
    """``teacher/clean_accuracy``, ``student/der``...: CA, ASR, RA of each model, DER of each student, and each
    run's wall time (``teacher/seconds``...)."""
    seconds = {f"{model}/seconds": summary.get("seconds") for model, summary in summaries.items()}
    return flat_results(summaries, METRICS) | seconds


def training_table(rows: list[dict]) -> str:
    """Per attack: the teacher and the student on clean images once, then each variation config's students;
    CA, ASR, RA and (students) DER in %."""
    body = []
    for attack in dict.fromkeys(row["attack"] for row in rows):
        mine = [row for row in rows if row["attack"] == attack]
        lines = []
        for model, label in SHARED_MODELS.items():
            found = next((row for row in mine if f"{model}/clean_accuracy" in row), None)
            if found is not None:
                lines.append([label, *_cells(found, model)])
        for row in mine:
            for model, label in VARIANT_MODELS.items():
                if f"{model}/clean_accuracy" in row:
                    lines.append([label.format(row["variations"]), *_cells(row, model)])
        body += [[attack if i == 0 else "", *line] for i, line in enumerate(lines)]
    return markdown_table(["attack", "model", "CA %", "ASR %", "RA %", "DER %", "min"], body)


def _cells(row: dict, model: str) -> list[str]:
    der = percent(row.get(f"{model}/der")) if model != "teacher" else ""
    seconds = row.get(f"{model}/seconds")
    minutes = "" if seconds is None else f"{seconds / 60:.1f}"
    return [*(percent(row.get(f"{model}/{metric}")) for metric in METRICS), der, minutes]


def detection_table(rows: list[dict]) -> str:
    """AUROC and TPR at 5 % FPR (%) of each detector, and how many images each flagged, per setting."""
    header = ["attack", "variations", "poisoned"]
    header += [f"{label}: AUROC / TPR@5% FPR / flagged" for label in DETECTORS.values()]
    body = []
    for row in rows:
        found = row.get("detection")
        if found is None:
            continue
        cells = []
        for name in DETECTORS:
            figures = found.get(name)
            cells.append(
                ""
                if figures is None
                else f"{percent(figures['auroc'])} / {percent(figures['tpr_at_5pct_fpr'])} / {figures['flagged']}"
            )
        body.append([row["attack"], row["variations"], f"{found['num_poisoned']} of {found['num_images']}", *cells])
    return markdown_table(header, body)


def plot(rows: list[dict], path: Path) -> None:
    """Clean accuracy and ASR per attack, one bar per model (the teacher once per attack, then each student)."""
    from matplotlib.figure import Figure

    attacks = list(dict.fromkeys(row["attack"] for row in rows))
    bars: dict[str, dict[str, tuple]] = {}  # label → attack → (CA, ASR)
    for row in rows:
        labels = {**SHARED_MODELS, **{m: label.format(row["variations"]) for m, label in VARIANT_MODELS.items()}}
        for model, label in labels.items():
            if f"{model}/clean_accuracy" in row:
                figures = (row[f"{model}/clean_accuracy"], row[f"{model}/attack_success_rate"])
                bars.setdefault(label, {})[row["attack"]] = figures
    figure = Figure(figsize=(max(6.0, 1.3 * len(attacks) + 2), 6.5), layout="constrained")
    axes = figure.subplots(2, 1, sharex=True)
    width = 0.8 / max(1, len(bars))
    for i, (label, values) in enumerate(bars.items()):
        xs = [a + (i - (len(bars) - 1) / 2) * width for a in range(len(attacks))]
        for axis, which in zip(axes, (0, 1), strict=True):
            heights = [100 * (values[a][which] or 0) if a in values else 0 for a in attacks]
            axis.bar(xs, heights, width, label=label if which == 0 else None)
    axes[0].set_ylabel("clean accuracy %")
    axes[1].set_ylabel("attack success rate %")
    axes[1].set_xticks(range(len(attacks)), attacks, rotation=20)
    for axis in axes:
        axis.set_ylim(0, 100)
        axis.grid(axis="y", alpha=0.3)
    figure.legend(loc="outside upper center", ncols=min(3, len(bars)), fontsize="small")
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)


def tables(plan: EvidencePlan, rows: list[dict], missing: list[str] | tuple = ()) -> str:
    test = (
        "the whole test set"
        if plan.test_per_class is None
        else f"the first {plan.test_per_class} test images of each class"
    )
    text = [
        f"Made by `{plan.command}`: training images {plan.first}–{plan.first + plan.per_class - 1} of every class "
        f"of {plan.data / 'train'}, {test}. CA: clean accuracy; ASR: attack success rate on the "
        "triggered test images of non-target classes; RA: robust accuracy (triggered images given their true "
        "class); DER: defence effectiveness rate, (ASR drop − CA drop + 1) / 2 against the teacher, each drop "
        "at least 0; all in %. min: the run's wall time.",
        "",
        training_table(rows),
    ]
    if any(row.get("detection") for row in rows):
        text += ["", "Detection: AUROC and TPR at 5 % FPR in %, images flagged by each detector's threshold.", ""]
        text += [detection_table(rows)]
    if missing:
        text += ["", f"Not finished yet, so not in the tables: {', '.join(missing)}."]
    return "\n".join(text)


def write_outputs(plan: EvidencePlan, rows: list[dict], missing: list[str] | tuple = ()) -> None:
    text = f"# Evidence: {len(rows)} settings\n\n{tables(plan, rows, missing)}\n"
    atomic_write_text(plan.out / "evidence.md", text)
    atomic_write_json(plan.out / "evidence.json", {"command": plan.command, "rows": rows, "missing": list(missing)})
    plot(rows, plan.out / "evidence.png")
    for attack in dict.fromkeys(row["attack"] for row in rows):
        mine = [row for row in rows if row["attack"] == attack and row.get("variations_folder")]
        if mine:  # poisoned training images, with the trigger, and their variations from each variation config
            folders = {row["variations"]: Path(row["variations_folder"]) for row in mine}
            samples_figure(Path(mine[0]["teacher_run"]), folders, plan.out / f"samples_{attack}.png")


def run_evidence(plan: EvidencePlan, collect: bool = False) -> tuple[list[dict], list[str]]:
    """Run every setting of the plan (teachers first), rewriting the outputs after each; returns the rows and the
    settings left out. ``collect``: run nothing, only gather the settings already finished (e.g. by one job per
    attack, each with its own ``--attacks``) into the outputs, and name the others."""
    data = data_folders(plan)
    rows: dict[tuple[str, str | None], dict] = {}  # (attack, variation config or None for the teacher alone)
    settings = [(attack, None) for attack in plan.teachers]  # every teacher first: its row lands early
    settings += [(attack, variations) for variations in plan.variations for attack in plan.teachers]
    done: list[dict] = []
    missing: list[str] = []
    order = {setting: i for i, setting in enumerate(sorted(settings, key=lambda s: list(plan.teachers).index(s[0])))}
    for attack, variations in settings:
        teacher_only = variations is None
        config = plan.variations[0] if teacher_only else variations
        spec = setting_spec(plan, attack, config, data)
        if collect and not setting_complete(spec, teacher_only):
            missing.append(
                f"{attack}: teacher" if teacher_only else f"{attack}: {VariationSpec.parse(variations).label}"
            )
            continue
        if not teacher_only:
            rows.pop((attack, None), None)
        rows[attack, variations] = run_setting(spec, attack, config, teacher_only=teacher_only)
        done = [rows[setting] for setting in sorted(rows, key=order.__getitem__)]  # by attack, as the plan lists
        if not collect:
            write_outputs(plan, done)
            log.info("\n%s", training_table(done))
    if collect:
        write_outputs(plan, done, missing)
    return done, missing


__all__ = ["EvidencePlan", "detection_table", "run_evidence", "subset_folder", "tables", "training_table"]
