"""Command-line plumbing shared by the scripts: arguments, logging, config loading and clean exits."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from tqdm.contrib.logging import logging_redirect_tqdm

from config.loading import load_checked_config
from config.overrides import overrides_from_arguments
from utils import distributed
from utils.errors import TrainingError, UserError

NOISY_LOGGERS = ("diffusers", "transformers", "accelerate", "timm", "PIL", "urllib3", "huggingface_hub")


def config_parser(description: str) -> argparse.ArgumentParser:
    # no abbreviations: --key=value words are config overrides, and --s=... must not silently mean --set
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False)
    parser.add_argument("-c", "--config", required=True, help="YAML config file")
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


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """The script's flags, with ``key=value`` and ``--key=value`` words (as sweep tools pass them) put before
    the ``--set`` overrides in ``args.overrides``; any other stray word stops with exit code 2."""
    args, rest = parser.parse_known_args(argv)
    try:
        args.overrides = [*overrides_from_arguments(rest), *args.overrides]
    except UserError as err:
        parser.error(str(err))
    return args


def run_guarded(work: Callable[[], object]) -> int:
    """Run ``work()`` with logging set up; map errors to exit codes and one line on stderr."""
    setup_logging()
    try:
        with logging_redirect_tqdm():
            work()
    except UserError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except TrainingError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        distributed.shutdown()
    return 0


def run_script(schema, main: Callable, parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse arguments, load and check the config, run ``main(config, args)``; map errors to exit codes."""
    args = parse_arguments(parser, argv)
    return run_guarded(lambda: main(load_checked_config(schema, args.config, args.overrides), args))
