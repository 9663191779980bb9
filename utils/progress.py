"""Progress that reads well wherever the output goes.

On a terminal, a tqdm bar. Elsewhere (a log file, Slurm's output, ``nohup``, ``> log.txt 2>&1``) a bar's frames
would fill the file with carriage returns, so long work prints a plain line every few percent instead (done,
rate, time left), and short work (a training epoch, which ends with its own summary line) prints nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator

from tqdm import tqdm

LINE_EVERY = 0.1  # share of the work between two plain lines (10 %)
LINE_MIN_SECONDS = 30.0  # ... but never more often than this, so quick work stays quiet


def on_terminal() -> bool:
    """Whether progress goes to a terminal (tqdm writes to stderr)."""
    return sys.stderr.isatty()


class ProgressLines:
    """Plain-line progress with tqdm's small interface (iterate, ``update``, ``set_postfix``, ``close``)."""

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str, unit: str, initial: int = 0):
        self.iterable, self.desc, self.unit = iterable, desc, unit
        self.total = total if total is not None else len(iterable) if hasattr(iterable, "__len__") else None
        self.n = self.initial = initial
        self.started = time.perf_counter()
        self.last_line, self.next_share = self.started, LINE_EVERY
        self.postfix = ""

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update()

    def __enter__(self) -> ProgressLines:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{key} {value}" for key, value in values.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        if not self.total:
            return
        now = time.perf_counter()
        if self.n / self.total >= self.next_share and now - self.last_line >= LINE_MIN_SECONDS:
            self.next_share = (int(self.n / self.total / LINE_EVERY) + 1) * LINE_EVERY
            self.last_line = now
            print(self.line(now), file=sys.stderr, flush=True)

    def line(self, now: float) -> str:
        done = self.n - self.initial
        rate = done / (now - self.started) if now > self.started else 0.0
        left = f", {format_seconds((self.total - self.n) / rate)} left" if rate and self.total else ""
        share = f" ({100 * self.n / self.total:.0f} %)" if self.total else ""
        extra = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {self.n}/{self.total or '?'} {self.unit}{share}, {rate:.2f} {self.unit}/s{left}{extra}"

    def close(self) -> None:
        pass


def format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str,
    unit: str = "it",
    show: bool = True,
    lines: bool = True,
    **bar_options,
):
    """A bar on a terminal; off a terminal, plain lines every 10 % (``lines``) or nothing; nothing if not ``show``."""
    if show and on_terminal():
        return tqdm(iterable, total=total, desc=desc, unit=unit, dynamic_ncols=True, **bar_options)
    if show and lines:
        return ProgressLines(iterable, total, desc, unit, bar_options.get("initial", 0))
    return tqdm(iterable, total=total, disable=True)
