"""Exceptions that end a run with one clear line instead of a traceback."""

import re


class UserError(Exception):
    """Bad input from the user (config, paths, data): exit code 2, one line on stderr."""


class TrainingError(Exception):
    """A run that cannot go on for a reason the user must look at (e.g. a non-finite loss): exit code 1."""


class RunInterrupted(Exception):
    """A run that ended early but can go on: one line, then the command that resumes ``run_dir``.

    Raised for a stop signal (exit code 128 + signal number) and for outputs that could not be written (1).
    """

    def __init__(self, message: str, run_dir, exit_code: int):
        super().__init__(message)
        self.run_dir = run_dir  # None: nothing was written yet, nothing to resume
        self.exit_code = exit_code


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type name), for one-line error reports."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__


def describe_write_error(err: BaseException) -> str:
    """Why a write failed, in a few words: ``No space left on device``, ``File too large``...

    Also from libraries that wrap the system's error in their own text (safetensors: ``... I/O error: No space
    left on device (os error 28)``).
    """
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    wrapped = re.search(r"([^:]+) \(os error \d+\)", str(err))
    return wrapped.group(1).strip() if wrapped else first_line(err)
