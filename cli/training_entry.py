"""The whole of ``train_teacher.py`` and ``train_student.py``: arguments first, the heavy imports after."""

from __future__ import annotations

from collections.abc import Callable

from cli.arguments import config_parser, examples_of, parse_arguments


def training_main(doc: str, override_example: str, load: Callable[[], tuple], argv: list[str] | None = None) -> int:
    """``train_teacher.py`` and ``train_student.py``: parse (``--help`` answers here, before torch is imported),
    then ``load()`` the schema and role and run. ``doc``: the script's docstring (description and examples)."""
    parser = config_parser(doc.splitlines()[0], True, examples_of(doc), override_example)
    parse_arguments(parser, argv)
    from cli.runner import run_training_script

    schema, role = load()
    return run_training_script(schema, role, parser, argv)
