"""Running a script: logging, loading its config, and clean exits (one line and an exit code per kind of error)."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from tqdm.contrib.logging import logging_redirect_tqdm

from cli.arguments import config_parser, parse_arguments
from config.loading import load_checked_config, load_config, load_resumed_config
from datasets.setting_keys import RESUMABLE_KEYS
from training.pipeline import run_training
from training.resumption import check_resumable
from utils import distributed
from utils.errors import RunInterrupted, TrainingError, UserError, describe_os_error, is_environment_error
from utils.stop_signals import StopRequested, end_loader_workers

NOISY_LOGGERS = ("diffusers", "transformers", "accelerate", "timm", "PIL", "urllib3", "huggingface_hub")


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


def launch_command(script: list[str]) -> str:
    """``script`` (the script and its arguments) launched as this process was (``python`` or single-node torchrun)."""
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


def resume_command(run_dir: Path) -> str:
    """The command that resumes ``run_dir`` with this script (``--resume``)."""
    return launch_command([sys.argv[0], "--resume", os.fspath(run_dir)])


def same_command(script: str, argv: list[str] | None) -> Callable[[Path], str]:
    """How to resume for scripts that find their stopped runs themselves (``run_pipeline.py``): the same command."""
    words = [sys.argv[0], *sys.argv[1:]] if argv is None else [script, *argv]
    return lambda run_dir: launch_command(words)


def load_script_config(schema, parser: argparse.ArgumentParser, args: argparse.Namespace, check_data: bool = True):
    """The config of ``-c`` with ``--set`` (checked against the data on disk unless ``check_data`` is false), or
    the one a ``--resume`` run directory saved."""
    if getattr(args, "resume", None) is None:
        if args.config is None:
            parser.error("the following arguments are required: -c/--config (or --resume RUN_DIR)")
        load = load_checked_config if check_data else load_config
        return load(schema, args.config, args.overrides)
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
    """Parse arguments, load and check the config, run ``main(config, args)``; map errors to exit codes."""
    args = parse_arguments(parser, argv)
    if getattr(args, "print_config", False):
        return run_guarded(lambda: print_config(load_script_config(schema, parser, args, check_data=False)))
    return run_guarded(lambda: main(load_script_config(schema, parser, args), args))


def print_config(config) -> None:
    """The resolved config, as a run directory's ``config.yaml`` would hold it, on stdout."""
    print(yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True), end="")


def run_training_script(schema, role, parser: str | argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """``train_teacher.py`` and ``train_student.py``: one config, one role (its objective and its report);
    ``parser``: the script's, or a description to build a plain one from."""
    parser = config_parser(parser, resumable=True) if isinstance(parser, str) else parser
    return run_script(schema, lambda cfg, args: run_training(cfg, role, resume=args.resume), parser, argv)


def run_guarded(work: Callable[[], object], how_to_resume: Callable[[Path], str] = resume_command) -> int:
    """Run ``work()`` with logging set up; map errors to exit codes and one line on stderr.

    0: done; 1: training cannot go on (e.g. a non-finite loss, a full disk); 2: bad input; 128 + n: stopped by
    signal n (130: SIGINT, 143: SIGTERM). A run that can be resumed ends with one line giving the command.
    """
    setup_logging()
    children = set(multiprocessing.active_children())
    try:
        with logging_redirect_tqdm():
            work()
    except RunInterrupted as err:
        if _is_main_process():  # one line, not one per process
            command = how_to_resume(err.run_dir) if err.run_dir is not None else "run it again"
            print(f"{err} {command}", file=sys.stderr)
        return err.exit_code
    except StopRequested as err:  # before the run directory existed
        if _is_main_process():
            print(f"{err} before the run started: nothing was saved", file=sys.stderr)
        return err.exit_code
    except UserError as err:
        for line in getattr(err, "lines", None) or [one_line(err)]:  # ConfigErrors: every error, one line each
            print(f"error: {line}", file=sys.stderr)
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
        end_loader_workers(children)  # after the error is handled: its traceback may hold a loader's workers
    return 0
