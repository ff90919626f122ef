"""The night's ledger: what was done to each input, with which pipeline and options.

An append-only JSON-lines file in the output directory.  One line is
appended (and flushed to disk) when a frame's products are all in place, so
a run killed at any moment leaves either a complete line or an unreadable
last fragment, which is ignored: that frame is then simply redone.  Later
lines win over earlier ones for the same input.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: File name of the ledger in the output directory.
LEDGER_NAME = "night-ledger.jsonl"


def file_key(path):
    """What identifies an input's content cheaply: (size, mtime in ns)."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def read(outdir):
    """Entries by absolute input path (the last line of each wins).

    Returns
    -------
    dict
        path -> entry (a dict with ``version``, ``options``, ``key``,
        ``result``).
    """
    path = Path(outdir) / LEDGER_NAME
    entries = {}
    if not path.exists():
        return entries
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            try:
                e = json.loads(line)
                entries[e["path"]] = e
            except (json.JSONDecodeError, KeyError, TypeError):
                log.info("%s line %d: incomplete (an interrupted run); ignored", path, n)
    return entries


def append(outdir, entry):
    """Append one entry and flush it to disk."""
    path = Path(outdir) / LEDGER_NAME
    # a fragment left by a killed run must not glue onto the new line
    need_newline = path.exists() and path.stat().st_size > 0 and not _ends_with_newline(path)
    with open(path, "a", encoding="utf-8") as fh:
        if need_newline:
            fh.write("\n")
        fh.write(json.dumps(entry, allow_nan=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _ends_with_newline(path):
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def is_done(entry, *, version, options, key, outdir):
    """True when ``entry`` records this input, pipeline version and options,
    and every product it lists is on disk."""
    if entry is None:
        return False
    if entry.get("version") != version or entry.get("options") != options:
        return False
    if entry.get("key") != key:
        return False
    return all((Path(outdir) / name).exists() for name in entry["result"]["products"])
