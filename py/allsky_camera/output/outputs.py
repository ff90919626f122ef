"""The products of one exposure, published together or not at all.

A run writes every product into a hidden staging directory beside the
outputs (``.part<pid>.<stem>``) and, once the whole set is written, renames
them into place (:meth:`OutputSet.commit`).  A run that fails or is
interrupted removes its staging directory, so the previous complete set of
outputs (``--overwrite``) is never destroyed and no half set appears.

A lock file per set (``.lock.<stem>``, holding the pid and host of the run
and, while renaming, the list of products) keeps two runs from writing the
same products at once: the second refuses with one line.  The lock of a run
that no longer exists (SIGKILL, power cut) is taken over: its staging
directory is removed, or, if it was killed while renaming, the renaming is
completed (every staged product was complete before the first rename), and
the log says so.  Hidden temporaries ``.part<pid>.*`` of dead runs are
removed too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
from pathlib import Path

from allsky_camera.exceptions import OutputError
from allsky_camera.output import interrupts
from allsky_camera.stages.io import hidden_name, name_max

log = logging.getLogger(__name__)

#: Prefixes of the hidden names a run creates in the output directory:
#: temporaries and staging directories (``.part<pid>.``) and locks.
PART_PREFIX = ".part"
LOCK_PREFIX = ".lock."
_PART_RE = re.compile(r"^\.part(\d+)\.")
#: Characters of an over-long output name quoted in the error message.
_QUOTED_NAME_CHARS = 40


def pid_alive(pid):
    """Whether a process of this ``pid`` exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:        # exists, belongs to someone else
        return True
    return True


def remove_stale_temporaries(outdir):
    """Remove the hidden temporaries of runs that no longer exist; their number.

    Files and directories named ``.part<pid>.*`` whose pid is not a live
    process (nor this one) are left by a killed run (SIGKILL, a crash).
    """
    outdir = Path(outdir)
    removed = {}
    for p in outdir.iterdir():
        m = _PART_RE.match(p.name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or pid_alive(pid):
            continue
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.setdefault(pid, []).append(p.name)
    for pid, names in removed.items():
        log.warning("removed %d temporary file(s) in %s left by run %d, which was killed: %s",
                    len(names), outdir, pid, ", ".join(sorted(names)))
    return sum(len(v) for v in removed.values())


class OutputSet:
    """Stage, lock and publish the products of one exposure.

    Use as a context manager::

        with OutputSet(outdir, stem, targets, overwrite=False) as oset:
            write every product into oset.staging (under its final name)
            oset.commit()

    Leaving the block without :meth:`commit` (an exception, a signal)
    removes the staged files and leaves the outputs as they were.

    Parameters
    ----------
    outdir : str or Path
        Existing, writable output directory.
    stem : str
        Output name stem of the exposure (names the lock).
    targets : sequence of Path
        Products the run means to write: refused if they exist (unless
        ``overwrite``), or are not regular files, or their names are too long.
    overwrite : bool
    """

    def __init__(self, outdir, stem, targets, *, overwrite):
        self.outdir = Path(outdir)
        self.stem = stem
        self.targets = [Path(t) for t in targets]
        self.overwrite = overwrite
        self.lock = self.outdir / hidden_name(LOCK_PREFIX, stem, self.outdir)
        self.staging = self.outdir / hidden_name(f"{PART_PREFIX}{os.getpid()}.", stem,
                                                 self.outdir)
        self._locked = False
        self.committed = []

    # ---------------------------------------------------------------- checks
    def _check_targets(self):
        limit = name_max(self.outdir)
        for t in self.targets:
            n = len(os.fsencode(t.name))
            if n > limit:
                raise OutputError(f"{t.name[:_QUOTED_NAME_CHARS]}...: output name is {n} "
                                  f"bytes, more than the {limit} the file system allows; "
                                  "rename the input file")
            if t.is_symlink() or t.exists():
                if not t.is_file() or t.is_symlink():
                    raise OutputError(f"{t}: exists and is not a regular file; remove it or "
                                      "choose another --outdir")
                if not self.overwrite:
                    raise OutputError(f"{t}: output exists already; remove it or pass "
                                      "--overwrite")

    # ------------------------------------------------------------------ lock
    def _lock_text(self, state, files=()):
        return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "state": state,
                           "staging": self.staging.name, "files": list(files)})

    def _write_lock(self, state, files=()):
        tmp = self.outdir / hidden_name(f"{PART_PREFIX}{os.getpid()}.", "lock." + self.stem,
                                        self.outdir)
        tmp.write_text(self._lock_text(state, files))
        return tmp

    def _acquire(self):
        tmp = self._write_lock("writing")
        try:
            for _ in range(3):
                try:
                    os.link(tmp, self.lock)     # fails if the lock exists: atomic
                    self._locked = True
                    return
                except FileExistsError:
                    self._take_over_stale()
            raise OutputError(f"{self.lock}: cannot take the lock of the outputs of "
                              f"{self.stem}; remove it if no run is writing them")
        finally:
            tmp.unlink(missing_ok=True)

    def _take_over_stale(self):
        """Recover from the lock of a dead run, or refuse if its run is alive."""
        try:
            info = json.loads(self.lock.read_text())
            pid, host = int(info["pid"]), str(info["host"])
        except FileNotFoundError:
            return                                  # released meanwhile: try again
        except (OSError, ValueError, KeyError, TypeError):
            info, pid, host = {}, -1, socket.gethostname()   # unreadable: a dead run's
        if host != socket.gethostname() or pid_alive(pid):
            where = f"pid {pid}" + ("" if host == socket.gethostname() else f" on {host}")
            raise OutputError(f"{self.outdir}: another run ({where}) is writing the outputs "
                              f"of {self.stem}; wait for it to finish, or remove "
                              f"{self.lock.name} if it is dead")
        staging = self.outdir / str(info.get("staging", ""))
        if info.get("state") == "committing" and staging.is_dir() and info.get("staging"):
            done = []
            for name in info.get("files", []):
                src = staging / name
                if src.is_file():
                    os.replace(src, self.outdir / name)
                    done.append(name)
            log.warning("run %d was killed while publishing the outputs of %s: finished "
                        "publishing its complete set (%d file(s) renamed)", pid, self.stem,
                        len(done))
        else:
            log.warning("run %d, which wrote the outputs of %s, was killed: its lock was "
                        "taken over", pid, self.stem)
        with contextlib.suppress(FileNotFoundError):
            self.lock.unlink()

    def _release(self):
        if self._locked:
            self.lock.unlink(missing_ok=True)
            self._locked = False

    # -------------------------------------------------------------- protocol
    def __enter__(self):
        self._acquire()
        try:
            remove_stale_temporaries(self.outdir)
            self._check_targets()
            self.staging.mkdir()
        except BaseException:
            self._release()
            raise
        return self

    def final(self, staged):
        """The published path of a file written into :attr:`staging`."""
        return self.outdir / Path(staged).name

    def commit(self):
        """Rename every staged product into place; signals wait until it is done."""
        names = sorted(p.name for p in self.staging.iterdir()
                       if not p.name.startswith(PART_PREFIX))
        for name in names:           # checked again: they may have appeared meanwhile
            t = self.outdir / name
            if (t.exists() or t.is_symlink()) and (not t.is_file() or t.is_symlink()):
                raise OutputError(f"{t}: exists and is not a regular file; remove it or "
                                  "choose another --outdir")
        with interrupts.deferred():
            tmp = self._write_lock("committing", names)
            os.replace(tmp, self.lock)
            try:
                for name in names:
                    os.replace(self.staging / name, self.outdir / name)
                    self.committed.append(self.outdir / name)
            except OSError as err:
                raise OutputError(f"{self.outdir}: cannot publish the outputs of {self.stem} "
                                  f"({err.strerror}); check the disk") from err
        return list(self.committed)

    def __exit__(self, exc_type, exc, tb):
        try:
            shutil.rmtree(self.staging, ignore_errors=True)
        finally:
            self._release()
        return False
