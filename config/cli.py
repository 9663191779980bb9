"""Command-line plumbing shared by the scripts: arguments, logging, config loading and clean exits."""

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

from tqdm.contrib.logging import logging_redirect_tqdm

from config.loading import load_checked_config, load_resumed_config
from config.overrides import overrides_from_arguments
from config.yaml_files import parse_yaml
from datasets.setting_keys import RESUMABLE_KEYS
from training.pipeline import run_training
from training.resumption import check_resumable
from utils import distributed
from utils.errors import RunInterrupted, TrainingError, UserError, describe_os_error, is_environment_error
from utils.stop_signals import StopRequested, end_loader_workers

NOISY_LOGGERS = ("diffusers", "transformers", "accelerate", "timm", "PIL", "urllib3", "huggingface_hub")


def config_parser(description: str, resumable: bool = False) -> argparse.ArgumentParser:
    """``-c CONFIG [--set KEY=VALUE ...]``; ``resumable`` adds ``--resume RUN_DIR`` (instead of ``-c``)."""
    # no abbreviations: --key=value words are config overrides, and --s=... must not silently mean --set
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False)
    parser.add_argument("-c", "--config", required=not resumable, help="YAML config file")
    if resumable:
        parser.add_argument(
            "--resume",
            type=Path,
            metavar="RUN_DIR",
            help="go on with a stopped run in RUN_DIR, with its saved config (no -c; --set only for "
            f"{', '.join(RESUMABLE_KEYS)})",
        )
    add_override_option(parser)
    return parser


def add_override_option(parser: argparse.ArgumentParser) -> None:
    """``--set KEY.PATH=VALUE ...``; ``parse_arguments`` adds ``key=value`` and ``--key=value`` words to it."""
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override config values (YAML-parsed), e.g. --set training.num_epochs=5 seed=7; "
        "key=value and --key=value words work too",
    )


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


def as_option(parser: argparse.ArgumentParser, word: str) -> list[str] | None:
    """A ``name=value`` or ``--name=value`` word naming one of the script's own options (``_`` standing for
    ``-``) as the words argparse expects; None when it names none (it is then a config override).

    Sweep tools pass every parameter the same way, so a grid over ``teacher`` or ``clean_student`` arrives as
    ``teacher=T.yaml`` (W&B's ``${args_no_hyphens}``) or ``--clean_student=True`` (``${args}``)."""
    name, sep, value = word.removeprefix("--").partition("=")
    options = parser._option_string_actions  # argparse has no public map from option strings to actions
    option = next((o for o in (f"--{name}", f"--{name.replace('_', '-')}") if sep and o in options), None)
    if option is None:
        return None
    if options[option].nargs != 0:
        return [f"{option}={value}"]
    switch = parse_yaml(value, repr(word)) if value.strip() else None
    if not isinstance(switch, bool):
        raise UserError(f"{word!r}: {option} is a switch: give {name}=true or {name}=false, not {value!r}")
    return [option] if switch else []


def _is_switch_with_value(parser: argparse.ArgumentParser, word: str) -> bool:
    option, sep, _ = word.partition("=")
    action = parser._option_string_actions.get(option) if sep and option.startswith("--") else None
    return action is not None and action.nargs == 0


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """The script's flags, with ``key=value`` and ``--key=value`` words (as sweep tools pass them) put before
    the ``--set`` overrides in ``args.overrides``; any other stray word stops with exit code 2. Such a word
    that names one of the script's options (``teacher=T.yaml``, ``--clean_student=true``) is that option."""
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        # argparse refuses a value given to a switch (--dry-run=true); sweep tools give one to every parameter
        words = [
            part
            for word in words
            for part in (as_option(parser, word) if _is_switch_with_value(parser, word) else [word])
        ]
        args, rest = parser.parse_known_args(words)
        # only the words argparse left over are candidates: a value after --set or -c stays what it is
        options = {word: found for word in rest if (found := as_option(parser, word)) is not None}
        if options:
            args, rest = parser.parse_known_args([part for word in words for part in options.get(word, [word])])
        args.overrides = [*overrides_from_arguments(rest), *args.overrides]
    except UserError as err:
        parser.error(str(err))
    return args


def run_script(schema, main: Callable, parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse arguments, load and check the config, run ``main(config, args)``; map errors to exit codes."""
    args = parse_arguments(parser, argv)
    return run_guarded(lambda: main(load_script_config(schema, parser, args), args))


def run_training_script(schema, role, description: str, argv: list[str] | None = None) -> int:
    """``train_teacher.py`` and ``train_student.py``: one config, one role (its objective and its report)."""
    parser = config_parser(description, resumable=True)
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
