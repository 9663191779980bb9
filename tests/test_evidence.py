"""The evidence driver's pieces (benchmarks/cifar10_evidence.py runs them end to end in tests/test_readme.py)."""

import json

import pytest
import yaml

from datasets.image_folder import scan_image_folder
from experiments.evidence import EvidencePlan, detection_table, run_evidence, subset_folder, training_table
from tests.conftest import write_config
from tests.test_experiments import experiment_files
from utils.errors import UserError


def test_a_subset_links_the_asked_range_of_every_class(image_data, tmp_path):
    folder = subset_folder(image_data["train"], 2, 3, tmp_path / "subset")
    source = scan_image_folder(image_data["train"])
    for name in source.classes:
        wanted = sorted(p for p in (image_data["train"] / name).iterdir())[2:5]
        linked = sorted((folder / name).iterdir())
        assert [p.name for p in linked] == [p.name for p in wanted]
        assert all(p.is_symlink() and p.resolve() == w.resolve() for p, w in zip(linked, wanted, strict=True))
    assert scan_image_folder(folder).classes == source.classes
    with pytest.raises(UserError, match="images 4–8 of each class do not exist"):
        subset_folder(image_data["train"], 4, 5, tmp_path / "too_far")
    assert not (tmp_path / "too_far").exists()  # nothing half-made


def test_tables_put_each_model_and_detector_in_its_place():
    rows = [
        {"attack": "sig", "variations": "", "teacher/clean_accuracy": 0.5, "teacher/attack_success_rate": 0.9},
        {
            "attack": "badnets",
            "variations": "classical",
            **{"teacher/clean_accuracy": 0.6, "teacher/attack_success_rate": 0.95, "teacher/robust_accuracy": 0.04},
            **{"clean_student/clean_accuracy": 0.62, "clean_student/attack_success_rate": 0.02},
            "teacher/seconds": 540.0,
            **{"student/clean_accuracy": 0.55, "student/attack_success_rate": 0.1, "student/der": 0.9},
            "detection": {
                "num_poisoned": 90,
                "num_images": 1000,
                "variations": {"auroc": 0.9, "tpr_at_5pct_fpr": 0.5, "flagged": 120},
                "spectral_signatures": {"auroc": None, "tpr_at_5pct_fpr": None, "flagged": 3},
            },
        },
        {
            "attack": "badnets",
            "variations": "ddpm_sdedit",
            **{"teacher/clean_accuracy": 0.6, "teacher/attack_success_rate": 0.95, "teacher/robust_accuracy": 0.04},
            **{"student/clean_accuracy": 0.58, "student/attack_success_rate": 0.03, "student/der": 0.95},
            "detection": None,
        },
    ]
    lines = training_table(rows).splitlines()
    assert lines[0] == "| attack | model | CA % | ASR % | RA % | DER % | min |"
    assert lines[2:] == [
        "| sig | teacher | 50.0 | 90.0 | n/a |  |  |",
        "| badnets | teacher | 60.0 | 95.0 | 4.0 |  | 9.0 |",  # once, though two settings have it
        "|  | student on clean images | 62.0 | 2.0 | n/a | n/a |  |",
        "|  | student on classical | 55.0 | 10.0 | n/a | 90.0 |  |",
        "|  | student on ddpm_sdedit | 58.0 | 3.0 | n/a | 95.0 |  |",
    ]
    (row,) = detection_table(rows).splitlines()[2:]  # only the setting with detection figures
    assert row == "| badnets | classical | 90 of 1000 | 90.0 / 50.0 / 120 | n/a / n/a / 3 |  |"
    json.dumps(rows)  # evidence.json holds the rows as they are


def test_collect_gathers_the_finished_settings_and_names_the_others_without_running_them(image_data, tmp_path):
    experiment = experiment_files(tmp_path / "files", image_data)  # a BadNets teacher (test_resnet, 1 epoch)
    other = tmp_path / "files" / "teacher_blended.yaml"
    teacher = yaml.safe_load((tmp_path / "files" / "teacher.yaml").read_text())
    teacher["backdoor"] = {"target_idx": 0, "poisoning_rate": 0.5, "BlendedBackdoor": {}}
    write_config(other, teacher)
    data = image_data["train"].parent  # train/ and test/
    plan = dict(experiment=experiment, variations=[str(tmp_path / "files" / "variations.yaml")], data=data)
    plan |= dict(first=1, per_class=4, out=tmp_path / "out", detection=True)
    ran, missing = run_evidence(EvidencePlan(teachers={"badnets": tmp_path / "files" / "teacher.yaml"}, **plan))
    assert missing == [] and len(ran) == 1
    before = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*") if "evidence" not in p.name)

    both = EvidencePlan(teachers={"blended": other, "badnets": tmp_path / "files" / "teacher.yaml"}, **plan)
    rows, missing = run_evidence(both, collect=True)
    assert missing == ["blended: teacher", "blended: variations"]
    after = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*") if "evidence" not in p.name)
    assert after == before  # the Blended setting was not started: no folder, no run
    (row,) = rows
    assert row["attack"] == "badnets" and row["variations"] == "classical"
    assert row == ran[0] and row["detection"]["num_images"] == 12  # the figures the run itself reported
    written = json.loads((tmp_path / "out" / "evidence.json").read_text())
    assert written["missing"] == missing and [r["attack"] for r in written["rows"]] == ["badnets"]
    text = (tmp_path / "out" / "evidence.md").read_text()
    assert "| badnets | teacher |" in text and "| blended |" not in text
    assert [p.name for p in (tmp_path / "out").glob("samples_*.png")] == ["samples_badnets.png"]
    assert text.rstrip().endswith("Not finished yet, so not in the tables: blended: teacher, blended: variations.")
