"""The scripts' arguments, parsed before anything heavy is imported (``--help`` answers at once).

``-c CONFIG``, ``--set KEY=VALUE`` overrides (and ``key=value`` / ``--key=value`` words, as sweep tools pass
them), ``--resume RUN_DIR`` for training scripts, ``--print-config`` to see the resolved config and stop.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from config.overrides import overrides_from_arguments
from config.yaml_files import parse_yaml
from datasets.setting_keys import RESUMABLE_KEYS
from utils.errors import UserError


def examples_of(doc: str) -> list[str]:
    """The example commands of a script's docstring (lines starting with ``python`` or ``torchrun``, with their
    backslash continuations joined)."""
    lines = [line.strip() for line in doc.replace("\\\n", " ").splitlines()]
    return [" ".join(line.split()) for line in lines if line.startswith(("python ", "torchrun "))]


def config_parser(
    description: str, resumable: bool = False, examples: list[str] = (), override_example: str = "seed=7"
) -> argparse.ArgumentParser:
    """``-c CONFIG [--set KEY=VALUE ...] [--print-config]``; ``resumable`` adds ``--resume RUN_DIR`` (instead of
    ``-c``); ``examples`` are shown at the end of ``--help``."""
    epilog = "examples:\n" + "\n".join(f"  {example}" for example in examples) if examples else None
    # no abbreviations: --key=value words are config overrides, and --s=... must not silently mean --set
    parser = argparse.ArgumentParser(
        description=description, epilog=epilog, allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-c", "--config", required=not resumable, help="YAML config file")
    if resumable:
        parser.add_argument(
            "--resume",
            type=Path,
            metavar="RUN_DIR",
            help="go on with a stopped run in RUN_DIR, with its saved config (no -c; --set only for "
            f"{', '.join(RESUMABLE_KEYS)})",
        )
    add_override_option(parser, override_example)
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config (YAML) and stop, without running"
    )
    return parser


def add_override_option(parser: argparse.ArgumentParser, example: str = "seed=7") -> None:
    """``--set KEY.PATH=VALUE ...``; ``parse_arguments`` adds ``key=value`` and ``--key=value`` words to it."""
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY.PATH=VALUE",
        help=f"override config values (YAML-parsed), e.g. --set {example}; key=value and --key=value words work too",
    )


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
