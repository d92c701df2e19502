"""Files only FabQueue's own user may read: the data folder holds Argon2 hashes, e-mail
addresses, everyone's uploads and the signing key.

Folders are 0700 and files 0600, when created and again on every start (an older data folder
made with the usual umask 022 was 0755/0644).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed; make it 0700."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(exist_ok=True, mode=DIR_MODE)
    path.chmod(DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty if it does not exist (0600 from the first moment); make it 0600."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    path.chmod(FILE_MODE)
    return path


def tighten_existing(*paths: Path) -> None:
    """0600 for those of ``paths`` that exist (SQLite's -wal and -shm files)."""
    for path in paths:
        if path.exists():
            path.chmod(FILE_MODE)
