"""Termination signals turned into an exception, so that a run cleans up.

``timeout``, batch schedulers and a dropped ssh session end a process with
SIGTERM or SIGHUP, not Ctrl-C.  Inside :func:`handled`, both raise
:class:`Terminated` (a :class:`KeyboardInterrupt`, so ``except Exception``
blocks do not swallow it) in the main thread, and the ``finally`` clauses and
context managers of the run remove its temporaries, as they do on Ctrl-C.
The command-line scripts then print one line and exit with ``128 + signal``,
the shell's convention.
"""

from __future__ import annotations

import contextlib
import signal
import threading

#: Signals that end a run cleanly (SIGINT already raises KeyboardInterrupt).
TERMINATING = ("SIGTERM", "SIGHUP")
#: Exit status of a process ended by signal N is 128 + N (POSIX shells).
SIGNAL_EXIT_BASE = 128


class Terminated(KeyboardInterrupt):
    """The run was ended by a signal; ``signum`` says which."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _raise(signum, _frame):
    raise Terminated(signum)


@contextlib.contextmanager
def handled():
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated`.

    The previous handlers are restored on exit.  Outside the main thread
    (where Python cannot set handlers) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {}
    for name in TERMINATING:
        sig = getattr(signal, name, None)
        if sig is not None:
            old[sig] = signal.signal(sig, _raise)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def deferred():
    """Hold SIGINT, SIGTERM and SIGHUP until the block is over.

    For the few renames that publish a set of products: a signal then ends
    the run after the set is complete, never half-way through it.
    """
    sigs = {getattr(signal, n) for n in ("SIGINT", *TERMINATING) if hasattr(signal, n)}
    if threading.current_thread() is not threading.main_thread() or not hasattr(
            signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def describe(err):
    """``(signal name, exit status)`` of a KeyboardInterrupt or :class:`Terminated`."""
    signum = getattr(err, "signum", signal.SIGINT)
    return signal.Signals(signum).name, SIGNAL_EXIT_BASE + int(signum)
