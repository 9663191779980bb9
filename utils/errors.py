"""Exceptions that end a run with one clear line instead of a traceback."""

from __future__ import annotations

import errno
import os
import re

# OSErrors that say something about the user's files and disks, not about the code, and how to say it. (Not
# ENOENT: a missing file the code expected is more often a bug, and user paths are checked up front.)
ENVIRONMENT_PROBLEMS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied (operation not permitted)",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device (disk full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (the file system's or the process's file-size limit)",
    errno.EEXIST: "a file is in the way (already exists)",
    errno.ENOTDIR: "not a folder (a file is in the way)",
    errno.EISDIR: "is a folder, not a file",
    errno.ENAMETOOLONG: "name too long",
    errno.ELOOP: "too many levels of symbolic links",
}


class UserError(Exception):
    """Bad input from the user (config, paths, data): exit code 2, one line on stderr."""


class ConfigErrors(UserError):
    """Every error of one config at once: one line each (a script prints them all, then exits 2)."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("\n".join(lines))


class PathError(UserError):
    """A file or folder the run needs cannot be used: permissions, a file in the way, a full disk."""

    def __init__(self, path: str | os.PathLike, err: OSError, action: str = "cannot use"):
        self.path, self.errno = path, err.errno
        super().__init__(f"{action} {path}: {ENVIRONMENT_PROBLEMS[err.errno]}")


class TrainingError(Exception):
    """A run that cannot go on for a reason the user must look at (e.g. a non-finite loss): exit code 1."""


def is_environment_error(err: BaseException) -> bool:
    """Whether ``err`` is an OSError about files and disks (to report in one line), not a bug."""
    return isinstance(err, OSError) and err.errno in ENVIRONMENT_PROBLEMS


def describe_os_error(err: OSError) -> str:
    """'<path>: <problem>' for an environment error (see :func:`is_environment_error`)."""
    problem = ENVIRONMENT_PROBLEMS[err.errno]
    return f"{err.filename}: {problem}" if err.filename is not None else problem


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


def describe_load_error(err: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in one line.

    Never torch's own advice for a file with pickled objects (load it with ``weights_only=False``): that runs
    whatever code the file holds.
    """
    text = str(err)
    if "weights only load failed" not in text.lower():
        return first_line(err)
    found = re.search(r"GLOBAL (\S+)", text)
    what = f" ({found.group(1)})" if found else ""
    return f"it holds Python objects other than tensors and plain containers{what}; those are never unpickled"
