"""Experiment tracking: ``metrics.jsonl`` in the run directory, mirrored to Weights & Biases when enabled.

Logging never stops training: without an API key or a server that answers within ``init_timeout`` seconds the
W&B run is written offline (``wandb sync`` uploads it later), and if even that fails the run goes on with local
files only.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from utils.atomic_io import atomic_write_text, json_text
from utils.errors import first_line
from utils.section import Section

log = logging.getLogger(__name__)

OFFLINE_MODES = ("offline", "disabled", "dryrun")
# seconds to wait for the W&B server before logging offline (wandb.args.settings.init_timeout); W&B's own default
# of 90 s, plus its retries, kept a run without network waiting almost two minutes
DEFAULT_INIT_TIMEOUT = 15.0


class WandbSection(Section):
    """Config section ``wandb``."""

    enable_logging: bool = False  # mirror the run to Weights & Biases (offline if it cannot be reached)
    args: dict[str, Any] = Field(default_factory=dict)  # keyword arguments of wandb.init (project, name...)

    @field_validator("args")
    @classmethod
    def _init_kwargs(cls, value: dict) -> dict:
        if value:
            import wandb  # slow import: only when there is something to check

            allowed = set(inspect.signature(wandb.init).parameters)
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise ValueError(f"unknown wandb.init argument(s) {', '.join(unknown)}; see wandb.init's docs")
            settings = value.get("settings") or {}
            if not isinstance(settings, dict):  # start_wandb merges it into its own settings
                raise ValueError(f"settings must be a mapping of wandb.Settings fields, not {settings!r}")
            timeout = settings.get("init_timeout", DEFAULT_INIT_TIMEOUT)
            # bool is an int subclass, but `init_timeout: true` is a mistake, not one second
            if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < math.inf:
                raise ValueError(f"settings.init_timeout must be a positive number of seconds, not {timeout!r}")
        return value


def _why_not_online(timeout: float) -> str | None:
    """None when W&B has an API key and its server answers within ``timeout`` seconds; else why to go offline."""
    import wandb

    try:
        if not wandb.login(prompt=False, verify=False):
            return "no API key (run `wandb login` or set WANDB_API_KEY)"
    except Exception as err:  # a malformed key file, for instance
        return f"cannot log in ({type(err).__name__}: {first_line(err, 120)})"
    server = wandb.setup().settings.base_url
    try:  # one plain request, through the same proxies (HTTPS_PROXY...) as W&B; any HTTP answer will do
        urllib.request.urlopen(server, timeout=timeout).close()
    except urllib.error.HTTPError:
        return None
    except OSError as err:  # refused, timed out, unknown host (URLError is an OSError)
        reason = getattr(err, "reason", err)
        if isinstance(reason, ssl.SSLError):
            return None  # the server answered; certificates are wandb's to judge
        return f"{server} does not answer within {timeout:g} s ({first_line(reason, 120)})"
    return None


def sync_command(run) -> str:
    """``wandb sync <folder>/offline-run-*-<id>``: every session of an offline run (a resumed run has several)."""
    parts = Path(run.settings.sync_dir).parent / f"offline-run-*-{run.id}"
    return f"wandb sync {parts}"


def _offline_line(run, reason: str) -> str:
    return f"W&B: {reason}; logging offline; upload later with: {sync_command(run)}"


def finish_wandb(run) -> str | None:
    """Close the W&B run; for an offline run, the line that says how to upload it (``None`` online).

    Callers log that line last: by the end of a run the one printed at its start has scrolled away.
    """
    hint = f"W&B: the run was logged offline; upload it with: {sync_command(run)}" if run.offline else None
    run.finish()
    return hint


def start_wandb(
    enabled: bool, init_args: dict, config: dict, run_dir: Path, job_type: str, resume_id: str | None = None
):
    """``wandb.init(**init_args, config=config)``, falling back to offline mode; ``None`` when disabled.

    The wait for the server is bounded by ``init_args["settings"]["init_timeout"]`` (default
    :data:`DEFAULT_INIT_TIMEOUT`); falling back is said in one line. ``resume_id`` continues that W&B run.
    """
    if not enabled:
        return None
    import wandb

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    settings = {"init_timeout": DEFAULT_INIT_TIMEOUT, **(init_args.get("settings") or {})}
    args = {"dir": os.fspath(run_dir), "job_type": job_type, **init_args, "settings": settings}
    if resume_id is not None:
        args = {"id": resume_id, "resume": "allow", **args}
    mode = os.environ.get("WANDB_MODE") or args.get("mode")
    reason = None if mode in OFFLINE_MODES else _why_not_online(settings["init_timeout"])
    if reason is None:
        try:
            return wandb.init(**args, config=config)
        except Exception as err:
            if mode in OFFLINE_MODES:
                log.warning("W&B: wandb.init failed (%s: %s)", type(err).__name__, first_line(err, 200))
                return _without_wandb()
            reason = f"wandb.init failed ({type(err).__name__}: {first_line(err, 120)})"
    offline = {**args, "mode": "offline", "settings": {**settings, "silent": True}}  # this line says it all
    try:
        run = wandb.init(**offline, config=config)
    except Exception as err:
        log.warning("W&B: %s, and offline too (%s: %s)", reason, type(err).__name__, first_line(err, 200))
        return _without_wandb()
    log.warning(_offline_line(run, reason))
    return run


def _without_wandb() -> None:
    log.warning("W&B: continuing without W&B; the run directory has every metric")


class MetricsLog:
    """``log_metrics(dict, step)``: one JSON line per call in ``metrics.jsonl``, mirrored to W&B."""

    def __init__(self, path: Path, wandb_run=None):
        self.path = path
        self.wandb_run = wandb_run
        self._lines: list[str] = []

    @property
    def records(self) -> list[dict[str, Any]]:
        """Every record logged so far (what a training state saves)."""
        return [json.loads(line) for line in self._lines]

    def restore(self, records: list[dict[str, Any]]) -> None:
        """Go on after ``records`` (a resumed run): later lines follow them, whatever the file held after them."""
        self._lines = [json.dumps(record) for record in records]

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        self._lines.append(json_text({"step": step, **metrics}, self.path))
        # rewrite the small file whole: an interrupted run never leaves half a line
        atomic_write_text(self.path, "\n".join(self._lines) + "\n")
        if self.wandb_run is not None:
            self.wandb_run.log({k: v for k, v in metrics.items() if not isinstance(v, list | dict)}, step=step)


def add_checkpoint_file(artifact, path: Path, name: str | None = None) -> None:
    """Add a checkpoint to an artifact without a second copy on disk: uploaded from the run directory.

    By default W&B copies every file it logs into its staging folder (``~/.local/share/wandb/artifacts/staging``,
    kept until the upload, that is for ever offline) and the uploaded ones into its cache: a full copy of every
    checkpoint. The run directory's checkpoint is written once (atomically renamed into place) and never changed in
    place, so W&B may read it where it lies (``policy="immutable"``) and need not cache it (``skip_cache``).
    """
    artifact.add_file(os.fspath(path), name=name, skip_cache=True, policy="immutable")


def log_model_artifact(run, checkpoint: Path, metadata: dict) -> str:
    """Upload the checkpoint as a ``model`` artifact (from the run directory: no copy) and record its name in the
    run config.

    A student finds it from the run path through ``checkpoint_artifact`` in the run's config.
    """
    import wandb

    name = f"model-{run.id}"
    artifact = wandb.Artifact(name, type="model", metadata=metadata)
    add_checkpoint_file(artifact, checkpoint, checkpoint.name)
    run.log_artifact(artifact, aliases=["latest", "final"])
    run.config.update({"checkpoint_artifact": f"{name}:latest", "checkpoint_file": checkpoint.name})
    return name


def wandb_run_path(run) -> str | None:
    """``entity/project/run_id`` of a run (entity unknown offline: ``None`` then)."""
    if run is None:
        return None
    entity = getattr(run, "entity", None)
    return f"{entity}/{run.project}/{run.id}" if entity else None


def record_teacher_input(run, source) -> None:
    """Mark the teacher checkpoint as an input of this W&B run (artifact lineage).

    W&B records inputs only online; offline runs keep the teacher reference in their config
    (``distillation.teacher_model``, ``teacher_artifact``).
    """
    if run is None:
        return
    run.config.update({"teacher_artifact": source.artifact})
    if run.offline:
        log.info("W&B offline: teacher lineage is recorded only online; the run config names the teacher")
        return
    import wandb

    try:
        if source.artifact is not None:
            run.use_artifact(source.artifact)
        else:  # a local teacher: upload its checkpoint as the input artifact
            artifact = wandb.Artifact(f"teacher-{run.id}", type="model", metadata={"reference": source.reference})
            add_checkpoint_file(artifact, source.path)
            run.use_artifact(artifact)
    except Exception as err:  # lineage is a nicety; never stop training for it
        log.warning("W&B: could not record the teacher as an input (%s: %s)", type(err).__name__, err)


def log_comparison(run, results: dict) -> None:
    """Teacher vs. student as a W&B table (the summary gets the same numbers via ``finish_run``)."""
    import wandb

    keys = ("clean_accuracy", "attack_success_rate", "robust_accuracy")
    table = wandb.Table(
        columns=["model", *keys], data=[[name, *(results[name][k] for k in keys)] for name in ("teacher", "student")]
    )
    run.log({"results/teacher_vs_student": table})
