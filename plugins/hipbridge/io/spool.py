"""Loader files (LOAD DATA LOCAL INFILE reads a file): where they go, and removing those a killed process left."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time

from hipbridge.settings import settings


def spool_dir() -> str | None:
    return settings().spool_dir or ("/dev/shm" if os.path.isdir("/dev/shm") else None)


def spool_prefix() -> str:
    """Loader files are named after their process, so a killed process's files are known at once."""
    return f"hb_stage_{os.getpid()}_"


def _owner_gone(name: str) -> bool:
    pid = name.removeprefix("hb_stage_").split("_", 1)[0]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def clear_stale_spool(max_age_s: float = 3600.0) -> int:
    """Remove loader files left by killed processes: at once when the owning process is gone, else by age.

    The files hold a chunk's rows in plaintext (LOAD DATA reads them as they are), so they must
    not outlive their batch: each is deleted after its load, and a killed process's are removed
    by the next transfer on this machine (`pipeline.transfer.housekeeping`).
    """
    folder = spool_dir() or tempfile.gettempdir()
    now, removed = time.time(), 0
    for name in os.listdir(folder):
        if name.startswith("hb_stage_") and name.endswith(".tsv"):
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                if _owner_gone(name) or now - os.path.getmtime(path) > max_age_s:
                    os.unlink(path)
                    removed += 1
    return removed

