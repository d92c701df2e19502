"""The content-addressed file store: every upload, thumbnail and G-code lives under its sha256.

A user's file name never becomes a path: files are named only by their hash.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from fabqueue.store.private import private_dir


class TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"over the limit of {limit} bytes")
        self.limit = limit


def _valid_sha(sha: str) -> bool:
    return len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = private_dir(root)
        self.tmp = private_dir(root / "tmp")

    def path(self, sha: str) -> Path:
        if not _valid_sha(sha):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha[:2] / sha[2:4] / sha

    def exists(self, sha: str) -> bool:
        return self.path(sha).exists()

    def writer(self, max_bytes: int | None = None) -> StoreWriter:
        return StoreWriter(self, max_bytes)

    def put_bytes(self, data: bytes) -> str:
        w = self.writer()
        w.write(data)
        return w.commit()[0]

    def put_file(self, src: Path) -> str:
        w = self.writer()
        with src.open("rb") as f:
            while chunk := f.read(1 << 20):
                w.write(chunk)
        return w.commit()[0]

    def put_stream(self, stream: BinaryIO, max_bytes: int | None = None) -> tuple[str, int]:
        w = self.writer(max_bytes)
        try:
            while chunk := stream.read(1 << 20):
                w.write(chunk)
        except BaseException:
            w.abort()
            raise
        return w.commit()


class StoreWriter:
    """Hashes while writing to a temporary file; enforces the size limit as bytes arrive."""

    def __init__(self, store: FileStore, max_bytes: int | None) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.size = 0
        #: whether commit put a new file in the store (False: the same bytes were there)
        self.created = False
        self._hash = hashlib.sha256()
        fd, name = tempfile.mkstemp(dir=store.tmp, prefix="up-")
        self._file = os.fdopen(fd, "wb")
        self._tmp = Path(name)

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.max_bytes is not None and self.size > self.max_bytes:
            self.abort()
            raise TooLarge(self.max_bytes)
        self._hash.update(chunk)
        self._file.write(chunk)

    def commit(self) -> tuple[str, int]:
        self._file.close()
        sha = self._hash.hexdigest()
        dest = self.store.path(sha)
        # Each level on its own: ``parents=True`` would give the upper one the default mode.
        dest.parent.parent.mkdir(exist_ok=True, mode=0o700)
        dest.parent.mkdir(exist_ok=True, mode=0o700)
        if dest.exists():
            self._tmp.unlink(missing_ok=True)
        else:
            os.replace(self._tmp, dest)
            self.created = True
        return sha, self.size

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)
