"""Exclusive claims on the parts of a folder's work, so two jobs never write the same files at once.

A job doing part ``i`` of ``n`` of a folder (``0`` of ``1`` for the whole of it) holds the file
``<folder>/.lock-part-<i>-of-<n>`` under an OS lock (``flock``). The kernel drops that lock when the process
ends, however it ends, so the lock of a killed job is free at once and the next job takes it over. The file
names its holder (pid, host, start time) for the message that refuses a second job. Parts of different
splits overlap, so a job also refuses while any lock of another split is held.

Two jobs of different splits starting at the same instant may both be refused (each sees the other's lock),
never both let in. Released locks leave no file behind.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from utils.errors import UserError

log = logging.getLogger(__name__)

LOCK_PREFIX = ".lock-part-"
UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}  # file systems without flock


def is_lock_file(path: str | os.PathLike) -> bool:
    return Path(path).name.startswith(LOCK_PREFIX)


def _read_holder(fd: int) -> dict:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _busy(folder: Path, fd: int) -> UserError:
    holder = _read_holder(fd)
    if "pid" not in holder:
        return UserError(f"{folder}: in use by another process (it is starting or stopping; try again)")
    return UserError(
        f"{folder}: in use by pid {holder['pid']} on host {holder.get('host')} ({holder.get('part')}, since "
        f"{holder.get('started')}); wait for it to finish or stop it"
    )


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (a releasing holder unlinks it first)."""
    try:
        on_disk, held = path.stat(), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def _try_lock(path: Path, create: bool) -> int | None:
    """An fd holding ``path``'s lock; None if there is no such file; UserError if another process holds it."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            if create:
                raise
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            busy = _busy(path.parent, fd)
            os.close(fd)
            raise busy from None
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            return fd
        os.close(fd)  # we locked a file its holder had just released and unlinked: start over
        if not create:
            return None


@dataclass
class PartLock:
    """This process's claim on part ``index`` of ``count`` of ``folder``; :meth:`release` gives it back."""

    path: Path
    fd: int | None  # None where the file system has no locks (then the job runs unguarded, with a warning)
    created: list[Path] = field(default_factory=list)  # folders made for the lock, removed again if left empty

    @classmethod
    def acquire(cls, folder: str | os.PathLike, index: int, count: int) -> PartLock:
        """Claim the part, creating ``folder`` if needed; UserError naming the holder if it is taken."""
        folder = Path(folder)
        created = [p for p in (folder, *folder.parents) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{LOCK_PREFIX}{index + 1:05d}-of-{count:05d}"
        try:
            fd = _try_lock(path, create=True)
        except OSError as err:
            if err.errno not in UNSUPPORTED:
                raise
            log.warning("%s: the file system has no file locks; make sure no other job writes to it", folder)
            return cls(path, None, created)
        lock = cls(path, fd, created)
        try:
            for other in sorted(folder.glob(f"{LOCK_PREFIX}*")):
                if not other.name.endswith(f"-of-{count:05d}"):
                    _take_over_other_split(other)
        except BaseException:
            lock.release()
            raise
        lock._record(index, count)
        return lock

    def _record(self, index: int, count: int) -> None:
        previous = _read_holder(self.fd)
        if "pid" in previous:  # a holder that released normally leaves no file: this one ended abruptly
            log.warning(
                "%s: took over the lock of pid %s on host %s, which is no longer running",
                self.path.parent,
                previous["pid"],
                previous.get("host"),
            )
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "part": f"part {index + 1} of {count}",
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(holder).encode(), 0)

    def release(self) -> None:
        """Give the claim back: the file goes first, then the lock (see ``_try_lock``), then empty new folders."""
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None
        for folder in self.created:
            try:
                folder.rmdir()
            except OSError:  # not empty: the run wrote something, or another job uses it
                break


def _take_over_other_split(path: Path) -> None:
    """Refuse while a job of another split holds ``path``; remove it if its holder is gone."""
    fd = _try_lock(path, create=False)
    if fd is not None:
        path.unlink(missing_ok=True)
        os.close(fd)


def lock_states(folder: str | os.PathLike) -> tuple[list[str], list[Path]]:
    """The locks on ``folder``'s parts: (why it is in use, one line per live holder; lock files of jobs that ended
    without releasing them). Taking a free lock to look is momentary, and leaves its file for the next job."""
    live, dead = [], []
    for path in sorted(Path(folder).glob(f"{LOCK_PREFIX}*")):
        try:
            fd = _try_lock(path, create=False)
        except UserError as err:
            live.append(str(err))
            continue
        except OSError:  # a file system without locks: nothing to tell
            continue
        if fd is not None:
            os.close(fd)
            dead.append(path)
    return live, dead
