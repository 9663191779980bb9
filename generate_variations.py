"""Regenerate every (possibly poisoned) training image as a diffusion variation.

    python generate_variations.py -c configs/defaults/variations.yaml
    torchrun --nproc_per_node 4 generate_variations.py -c configs/defaults/variations.yaml
    python generate_variations.py -c configs/defaults/variations.yaml --shard 2/8

The output folder is an ImageFolder for the student. Re-running the same command resumes.
"""

from __future__ import annotations

import logging
import sys

from datasets.build import build_poisoning, poisoned_indices
from datasets.image_folder import scan_image_folder
from datasets.poisoned_image_folder import PoisonedImageFolder
from models.variation_backends import build_backend
from utils import distributed
from utils.cli import config_parser, run_script
from utils.config_loading import config_to_dict
from utils.config_schema import VariationConfig
from utils.errors import UserError, first_line
from utils.image_grid import image_grid
from utils.seeding import seed_everything
from utils.tracking import start_wandb
from variations.generator import generate
from variations.manifest import manifest_records, merge_parts, write_part
from variations.output_folder import prepare_output_folder, sources_fingerprint, sources_folder
from variations.output_plan import plan_outputs
from variations.sharding import combine, parse_shard

log = logging.getLogger("generate_variations")


def main(cfg: VariationConfig, args) -> dict:
    shard = parse_shard(args.shard)
    if args.overwrite and shard[1] > 1:
        raise UserError(
            "--overwrite with --shard: parallel jobs would delete each other's work; run one job with "
            "--overwrite (and without --shard) first, or clear the folder yourself"
        )
    device = distributed.resolve_device(cfg.device)
    distributed.init_from_environment(use_cuda=device.type == "cuda")
    part = combine(shard, distributed.rank(), distributed.world_size())
    seed_everything(cfg.seed)

    index = scan_image_folder(cfg.dataset.root)
    poisoning = build_poisoning(cfg.backdoor, index.labels, cfg.seed, single_pass=True)
    target_idx = cfg.backdoor.target_idx if cfg.backdoor else 0
    plan = plan_outputs(index.samples, index.classes, poisoning.fixed_mask if poisoning else None, target_idx)
    folder = cfg.output_folder
    diffusion = cfg.diffusion
    # The model loads before the output folder is touched: a bad diffusion.model leaves nothing behind.
    backend = build_backend(diffusion, device, cfg.dataset.batch_size)
    generation = {"sources_sha256": sources_fingerprint(index.root, index.samples), **backend.numerics}

    # One process checks and prepares the folder; every process learns the outcome.
    outcome = None
    if distributed.is_main_process():
        try:
            state = prepare_output_folder(cfg, index.classes, generation, args.overwrite, part.count == 1)
            outcome = ("ok", state)
        except UserError as err:
            outcome = ("error", str(err))
        except Exception as err:
            distributed.broadcast_from_main(("error", f"the main process failed: {first_line(err)}"))
            raise
    outcome = distributed.broadcast_from_main(outcome)
    if outcome[0] == "error":
        raise UserError(outcome[1])
    mine = part.select(plan)
    log.info(
        "%s: %d source images (%d poisoned) → %s; this process (%s): %d images, %s",
        cfg.dataset.name, len(plan), len(poisoned_indices(poisoning)), folder, part.tag, len(mine), outcome[1],
    )  # fmt: skip

    dataset = PoisonedImageFolder(index.samples, cfg.dataset.image_size, poisoning, output="uint8")
    stats = generate(
        backend,
        dataset,
        mine,
        index.classes,
        folder,
        seed=cfg.seed,
        num_variations=diffusion.num_variations,
        color_transfer=diffusion.color_transfer,
        batch_size=cfg.dataset.batch_size,
        num_workers=cfg.dataset.num_workers,
        sources_folder=sources_folder(folder) if cfg.save_source_copies else None,
        show_progress=distributed.is_main_process(),
    )
    write_part(folder, part, manifest_records(mine, index.classes, diffusion.num_variations, cfg.seed, folder))
    # No barrier: processes may finish far apart (a resumed shard has more left than the others); each tries
    # to merge and the last one to finish succeeds.
    merged = merge_parts(folder, part.count)
    summary = {"part": part.tag, **stats.as_dict()}
    if distributed.is_main_process():
        log.info(
            "%s: wrote %d, skipped %d source images in %.1f s (%.2f images/s)%s; manifest %s",
            part.tag, stats.written, stats.skipped, stats.seconds, stats.images_per_second,
            f", peak GPU memory {stats.peak_gpu_memory_gib} GiB" if stats.peak_gpu_memory_gib else "",
            "merged" if merged else "merged by the last part to finish",
        )  # fmt: skip
        log_to_wandb(cfg, summary, stats.previews)
    return summary


def log_to_wandb(cfg: VariationConfig, summary: dict, previews) -> None:
    # beside the output folder, which must stay a clean ImageFolder (a wandb/ folder would become a class)
    logs = cfg.output_folder.with_name(cfg.output_folder.name + "_wandb")
    run = start_wandb(cfg.wandb.enable_logging, cfg.wandb.args, config_to_dict(cfg), logs, "variations")
    if run is None:
        return
    import wandb

    if previews:
        grid = image_grid([[source for source, _ in previews], [variation for _, variation in previews]])
        run.log({"samples/source_vs_variation": wandb.Image(grid, caption="top: source, bottom: variation")})
    run.summary.update(summary)
    run.finish()


def parser():
    p = config_parser(__doc__.splitlines()[0])
    p.add_argument("--shard", default=None, metavar="I/N", help="do only the I-th of N disjoint parts (1-based)")
    p.add_argument("--overwrite", action="store_true", help="replace an output folder made with another config")
    return p


if __name__ == "__main__":
    sys.exit(run_script(VariationConfig, main, parser()))
