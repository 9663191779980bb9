"""Command-line plumbing shared by the scripts: arguments, logging, config loading and clean exits."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from tqdm.contrib.logging import logging_redirect_tqdm

from config.loading import load_checked_config
from utils import distributed
from utils.errors import TrainingError, UserError, describe_os_error, is_environment_error

NOISY_LOGGERS = ("diffusers", "transformers", "accelerate", "timm", "PIL", "urllib3", "huggingface_hub")


def config_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("-c", "--config", required=True, help="YAML config file")
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


def run_script(schema, main: Callable, parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse arguments, load and check the config, run ``main(config, args)``; map errors to exit codes."""
    args = parser.parse_args(argv)
    setup_logging()
    try:
        with logging_redirect_tqdm():
            config = load_checked_config(schema, args.config, args.overrides)
            main(config, args)
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
