"""One process's share of the variation step: plan, load the backend, guard the folder, generate, manifest."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from datasets.build import attack_from, build_poisoning, poisoned_indices
from datasets.image_folder import check_images, scan_image_folder
from datasets.poisoned_image_folder import PoisonedImageFolder
from datasets.setting_keys import setting_keys
from utils import distributed
from utils.errors import RunInterrupted, UserError, first_line
from utils.folder_lock import PartLock
from utils.image_grid import image_grid
from utils.seeding import seed_everything
from utils.stop_signals import GracefulStop, StopRequested
from utils.tracking import finish_wandb, start_wandb
from variations.backends import build_backend
from variations.generator import GenerationJob, GenerationStats, generate
from variations.manifest import manifest_records, merge_parts, write_part
from variations.output_folder import (
    SIZES_KEY,
    STACKS,
    prepare_output_folder,
    remove_leftovers,
    software_stack,
    sources_fingerprint,
    sources_folder,
    sources_sizes_fingerprint,
)
from variations.output_plan import OutputLayout, check_unique_outputs, plan_outputs
from variations.sharding import Part, combine, parse_shard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """Command-line choices that decide how the work is split, not what it produces."""

    shard: str | None = None  # "i/n": do only the i-th of n disjoint parts
    overwrite: bool = False  # replace a folder made with another config


@contextlib.contextmanager
def _locked(folder: Path, part: Part) -> Iterator[None]:
    """Hold this process's part of ``folder`` (every process its own); refused everywhere if any is taken."""
    lock = error = None
    try:
        lock = PartLock.acquire(folder, part.index, part.count)
    except UserError as err:
        error = f"output_folder: {err}"
    errors = [e for e in distributed.all_gather_objects(error) if e]
    try:
        if errors:
            raise UserError(errors[0])
        yield
    finally:
        if lock is not None:
            lock.release()


def _prepare_folder_once(cfg, classes, generation: dict, overwrite: bool) -> str:
    """One process checks and prepares the folder; every process learns the outcome."""
    outcome = None
    if distributed.is_main_process():
        try:
            outcome = ("ok", prepare_output_folder(cfg, classes, generation, overwrite))
        except UserError as err:
            outcome = ("error", str(err))
        except Exception as err:
            distributed.broadcast_from_main(("error", f"the main process failed: {first_line(err)}"))
            raise
    outcome = distributed.broadcast_from_main(outcome)
    if outcome[0] == "error":
        raise UserError(outcome[1])
    return outcome[1]


def run_variations(cfg, options: RunOptions = RunOptions()) -> dict:
    """Generate this process's part of the variations folder ``cfg`` describes; returns its summary.

    SIGTERM or Ctrl-C stops it at once (every image is written atomically, so none is half-written), releases
    the folder's lock and raises :class:`RunInterrupted`: running the same command again goes on.
    """
    try:
        with GracefulStop():
            return _run_variations(cfg, options)
    except StopRequested as stopped:
        raise RunInterrupted(
            f"{stopped}: the variations written so far stay in {cfg.output_folder}; to go on,", None, stopped.exit_code
        ) from None


def _run_variations(cfg, options: RunOptions) -> dict:
    shard = parse_shard(options.shard)
    if options.overwrite and shard[1] > 1:
        raise UserError(
            "--overwrite with --shard: parallel jobs would delete each other's work; run one job with "
            "--overwrite (and without --shard) first, or clear the folder yourself"
        )
    device = distributed.resolve_device(cfg.device)
    distributed.init_from_environment(use_cuda=device.type == "cuda")
    part = combine(shard, distributed.rank(), distributed.world_size())
    seed_everything(cfg.seed)

    index = scan_image_folder(cfg.dataset.root)
    poisoning = build_poisoning(cfg.backdoor, attack_from(cfg.backdoor), index, cfg.seed, single_pass=True)
    plan = plan_outputs(index.samples, index.classes, poisoning)
    folder = cfg.output_folder
    copies = sources_folder(folder) if cfg.save_source_copies else None
    layout = OutputLayout(folder, index.classes, cfg.diffusion.num_variations, copies)
    check_unique_outputs(plan, layout)
    mine = part.select(plan)
    check_images(((item.source, item.label) for item in mine), cfg.dataset.num_workers, distributed.is_main_process())
    # The lock comes before the model loads, so a busy folder is refused at once; a bad diffusion.model
    # still leaves nothing behind (the lock removes the folder it made).
    with _locked(folder, part):
        backend = build_backend(cfg.diffusion, device, cfg.dataset.batch_size)
        generation = {
            "sources_sha256": sources_fingerprint(index.root, index.samples),
            SIZES_KEY: sources_sizes_fingerprint(index.samples),
            **backend.numerics,
            STACKS: [software_stack(device)],
        }
        state = _prepare_folder_once(cfg, index.classes, generation, options.overwrite)
        # leftovers of a killed run: a job alone on the folder removes all; a part only its own outputs'
        owned = None if part.count == 1 else {output for item in mine for output in layout.outputs(item)}
        if removed := remove_leftovers(folder, owned):
            log.info("%s: removed %d temporary files of an interrupted run", part.tag, removed)
        log.info(
            "%s: %d source images (%d poisoned) → %s; this process (%s): %d images, %s",
            cfg.dataset.name,
            len(plan),
            len(poisoned_indices(poisoning)),
            folder,
            part.tag,
            len(mine),
            state,
        )
        job = GenerationJob(
            items=mine,
            layout=layout,
            seed=cfg.seed,
            color_transfer=cfg.diffusion.color_transfer,
            batch_size=cfg.dataset.batch_size,
            num_workers=cfg.dataset.num_workers,
            show_progress=distributed.is_main_process(),
        )
        dataset = PoisonedImageFolder(index.samples, cfg.dataset.image_size, poisoning, output="uint8")
        stats = generate(backend, dataset, job)
        write_part(folder, part, manifest_records(mine, layout, cfg.seed))
        # No barrier: processes may finish far apart (a resumed shard has more left than the others); each
        # tries to merge and the last one to finish succeeds.
        merged = merge_parts(folder, part.count)
    summary = {"part": part.tag, **stats.as_dict()}
    if distributed.is_main_process():
        _report(part.tag, stats, merged)
        log_to_wandb(cfg, summary, stats)
    if stats.non_finite:
        raise UserError(non_finite_message(stats.non_finite, cfg.diffusion))
    return summary


def non_finite_message(sources: list[str], diffusion) -> str:
    shown = ", ".join(sources[:5]) + (f" and {len(sources) - 5} more" if len(sources) > 5 else "")
    dtype = getattr(diffusion, "dtype", None)
    cure = (
        "float16 overflow is the usual cause: re-run with diffusion.dtype: bfloat16 (or float32), into another "
        "output_folder or with --overwrite"
        if dtype in ("auto", "float16")
        else "re-run with diffusion.dtype: float32, into another output_folder or with --overwrite"
    )
    return (
        f"diffusion: the model returned NaN or infinite values for {len(sources)} source image(s) ({shown}); "
        f"nothing was written for them (the other images were). Re-running the same command retries only them; "
        f"if they fail again, {cure}"
    )


def _report(tag: str, stats: GenerationStats, merged: bool) -> None:
    memory = f", peak GPU memory {stats.peak_gpu_memory_gib} GiB" if stats.peak_gpu_memory_gib else ""
    log.info(
        "%s: wrote %d, skipped %d source images in %.1f s (%.2f images/s)%s; manifest %s",
        tag,
        stats.written,
        stats.skipped,
        stats.seconds,
        stats.images_per_second,
        memory,
        "merged" if merged else "merged by the last part to finish",
    )


def log_to_wandb(cfg, summary: dict, stats: GenerationStats) -> None:
    # beside the output folder, which must stay a clean ImageFolder (a wandb/ folder would become a class)
    logs = cfg.output_folder.with_name(cfg.output_folder.name + "_wandb")
    config = {**cfg.to_dict(), **setting_keys(cfg.to_dict(), "variations")}  # flat keys to group runs by
    run = start_wandb(cfg.wandb.enable_logging, cfg.wandb.args, config, logs, "variations")
    if run is None:
        return
    import wandb

    if stats.previews:
        grid = image_grid([[source for source, _ in stats.previews], [variation for _, variation in stats.previews]])
        run.log({"samples/source_vs_variation": wandb.Image(grid, caption="top: source, bottom: variation")})
    run.summary.update(summary)
    hint = finish_wandb(run)
    if hint:
        log.warning("%s", hint)
