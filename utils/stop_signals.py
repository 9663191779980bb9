"""Stopping a run cleanly on SIGTERM (what Slurm and Kubernetes send before they kill a job) or SIGINT (Ctrl-C).

Inside the training loop a signal only raises a flag; the loop looks at it at every step boundary and before
every batch of a test-set evaluation (which is then abandoned), and under torchrun the processes compare their
flags, so that a signal seen by one stops every process at the same step.
Outside the loop (setting up, writing the final files) there is nothing to keep, and a signal stops the run at
once.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import threading

from utils.distributed import is_distributed, max_over_processes, start_max_over_processes

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequested(Exception):
    """A stop signal arrived; ``exit_code`` is the shell's ``128 + signal number`` (143 for SIGTERM, 130 for SIGINT)."""

    def __init__(self, signum: int, where: str = ""):
        self.signum, self.where = signum, where
        super().__init__(f"stopped by {signal.Signals(signum).name}{where}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class GracefulStop:
    """Context manager owning SIGTERM and SIGINT while a run is in progress (main thread only)."""

    def __init__(self):
        self.signum: int | None = None
        self.armed = False  # inside the loop: stop at the next step boundary; outside: stop at once
        self._previous: dict[int, object] = {}
        self._exchange = None  # under torchrun: the comparison of flags started at the last step boundary

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum: int, frame) -> None:
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt  # Ctrl-C twice: the user does not want to wait for the step to end
        self.signum = signum
        if not self.armed:
            raise StopRequested(signum)

    @contextlib.contextmanager
    def at_step_boundaries(self):
        """Within the block, signals wait for :meth:`check` (the training loop)."""
        self.armed = True
        try:
            yield
        finally:
            self.armed = False

    def check(self, where: str = "") -> None:
        """At a step boundary: raise :class:`StopRequested` if a stop signal arrived (on any process).

        Under torchrun the flags are compared in the background: each check starts a comparison and acts on
        the one the previous check started. Every process stops at the same step, at most one step later than
        a single process would, and no step waits for the others' answer.
        """
        if not is_distributed():
            signum = self.signum or 0
        else:
            previous, self._exchange = self._exchange, start_max_over_processes(self.signum or 0)
            signum = previous() if previous is not None else 0
        if signum:
            self.settle()
            raise StopRequested(signum, where)

    def check_now(self, where: str = "") -> None:
        """Like :meth:`check`, waiting for the comparison (between epochs, where the wait costs nothing)."""
        self.settle()
        signum = max_over_processes(self.signum or 0)
        if signum:
            raise StopRequested(signum, where)

    def settle(self) -> None:
        """Wait for a comparison still in flight."""
        if self._exchange is not None:
            self._exchange()
            self._exchange = None


def ignore_stop_signals() -> None:
    """For loader workers: a Ctrl-C or Slurm's SIGTERM reaches them too, but the main process decides when to stop."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def end_loader_workers(before: set) -> None:
    """Kill the daemonic worker processes started since ``before`` (``multiprocessing.active_children()``) that
    are still running; for the end of a script's work, successful or not.

    Loader workers ignore SIGTERM (:func:`ignore_stop_signals`), and at exit multiprocessing ends daemonic
    children with SIGTERM and then waits for them without a limit: a run that failed while a loader was alive
    (its error's traceback keeps the loader in a reference cycle, past torch's own shutdown) would never exit.
    The workers only read images, so nothing is lost by killing them.
    """
    left = [p for p in multiprocessing.active_children() if p.daemon and p not in before]
    if not left or threading.current_thread() is not threading.main_thread():
        return
    # torch's SIGCHLD handler raises in this thread when one of its workers dies by a signal: not for these
    previous = signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        for process in left:
            process.kill()
        for process in left:
            process.join()
    finally:
        signal.signal(signal.SIGCHLD, previous)
