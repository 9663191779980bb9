"""Command-line plumbing shared by the scripts: arguments, logging, config loading and clean exits."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from config.loading import load_checked_config, load_resumed_config
from training.resumption import RESUMABLE_KEYS, check_resumable
from utils import distributed
from utils.errors import RunInterrupted, TrainingError, UserError, describe_os_error, is_environment_error
from utils.stop_signals import StopRequested

NOISY_LOGGERS = ("diffusers", "transformers", "accelerate", "timm", "PIL", "urllib3", "huggingface_hub")


def config_parser(description: str, resumable: bool = False) -> argparse.ArgumentParser:
    """``-c CONFIG [--set KEY=VALUE ...]``; ``resumable`` adds ``--resume RUN_DIR`` (instead of ``-c``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("-c", "--config", required=not resumable, help="YAML config file")
    if resumable:
        parser.add_argument(
            "--resume",
            type=Path,
            metavar="RUN_DIR",
            help="go on with a stopped run in RUN_DIR, with its saved config (no -c; --set only for "
            f"{', '.join(RESUMABLE_KEYS)})",
        )
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override config values (YAML-parsed), e.g. --set training.num_epochs=5 seed=7",
    )
    return parser


def setup_logging() -> None:
    is_main = int(os.environ.get("RANK", "0")) == 0
    logging.basicConfig(
        level=logging.INFO if is_main else logging.WARNING,
        format="%(message)s",
        stream=sys.stderr,
        force=True,
    )
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def one_line(err: BaseException) -> str:
    """The error's message on one line; errors re-raised by DataLoader workers carry a traceback first."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    text = lines[-1] if lines else type(err).__name__
    for cls in (UserError, TrainingError):
        for prefix in (f"{cls.__module__}.{cls.__name__}: ", f"{cls.__name__}: "):
            text = text.removeprefix(prefix)
    return text


def resume_command(run_dir: Path) -> str:
    """The command that resumes ``run_dir``, launched as this process was (``python`` or single-node torchrun)."""
    script = [sys.argv[0], "--resume", os.fspath(run_dir)]
    if distributed.launched_by_torchrun():
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        nodes = int(os.environ.get("WORLD_SIZE", "1")) // per_node
        launcher = ["torchrun", "--nproc_per_node", str(per_node)]
        if nodes > 1:
            return f"{shlex.join([*launcher, '--nnodes', str(nodes)])} <your rendezvous options> {shlex.join(script)}"
        return shlex.join([*launcher, *script])
    # "python" when it names this very interpreter (symlinks not followed: a venv's python links to the base one)
    same = Path(shutil.which("python") or "").absolute() == Path(sys.executable).absolute()
    return shlex.join(["python" if same else sys.executable, *script])


def load_script_config(schema, parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The config of ``-c`` with ``--set``, or the one a ``--resume`` run directory saved."""
    if getattr(args, "resume", None) is None:
        if args.config is None:
            parser.error("the following arguments are required: -c/--config (or --resume RUN_DIR)")
        return load_checked_config(schema, args.config, args.overrides)
    if args.config is not None:
        raise UserError(
            f"--resume {args.resume} goes on with {args.resume}/config.yaml: drop -c/--config "
            f"(--set may change only {', '.join(RESUMABLE_KEYS)})"
        )
    config = load_resumed_config(schema, args.resume, args.overrides, RESUMABLE_KEYS)
    check_resumable(args.resume, config.training)
    return config


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0  # also before (or after) the process group exists


def run_script(schema, main: Callable, parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse arguments, load and check the config, run ``main(config, args)``; map errors to exit codes.

    0: done; 1: training cannot go on (e.g. a non-finite loss, a full disk); 2: bad input; 128 + n: stopped by
    signal n (130: SIGINT, 143: SIGTERM). A run that can be resumed ends with one line giving the command.
    """
    args = parser.parse_args(argv)
    setup_logging()
    try:
        with logging_redirect_tqdm():
            config = load_script_config(schema, parser, args)
            main(config, args)
    except RunInterrupted as err:
        if _is_main_process():  # one line, not one per process
            command = resume_command(err.run_dir) if err.run_dir is not None else "run it again"
            print(f"{err} {command}", file=sys.stderr)
        return err.exit_code
    except StopRequested as err:  # before the run directory existed
        if _is_main_process():
            print(f"{err} before the run started: nothing was saved", file=sys.stderr)
        return err.exit_code
    except UserError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except TrainingError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # files and disks (permissions, a file in the way, disk full); other errors are bugs
        if not is_environment_error(err):
            raise
        print(f"error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    finally:
        distributed.shutdown()
    return 0
