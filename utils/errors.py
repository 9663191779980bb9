"""Exceptions that end a run with one clear line instead of a traceback."""


class UserError(Exception):
    """Bad input from the user (config, paths, data): exit code 2, one line on stderr."""


class TrainingError(Exception):
    """A run that cannot go on for a reason the user must look at (e.g. a non-finite loss): exit code 1."""


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type name), for one-line error reports."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__
