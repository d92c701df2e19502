"""Children die with their parent, however the parent dies (even SIGKILL).

Linux's ``PR_SET_PDEATHSIG`` asks the kernel to signal a process when the thread that started
it ends. It survives ``exec`` (so it is set in the child between fork and exec) but not
``fork`` (so RQ's work-horse sets it again for itself). Elsewhere it is a no-op: the lock
file's leftover sweep (:mod:`fabqueue.queue.instance`) still ends orphans on the next start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """Ask to be sent ``sig`` when the parent ends; exit now if it has ended already."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    # The parent may have died between fork and prctl: then we were re-parented already.
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def preexec(parent: int | None = None):  # type: ignore[no-untyped-def]
    """A ``subprocess.Popen(preexec_fn=...)`` that ties the child to this process."""
    parent = parent if parent is not None else os.getpid()
    return lambda: die_with_parent(signal.SIGKILL, parent)


PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphaned descendants (a killed worker's PrusaSlicer) become our children, not init's,
    so the supervisor can end them (:func:`end_strays`) instead of leaving them running."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: fields follow the last ")"
        fields = stat.rsplit(b")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def end_strays(known: set[int]) -> list[int]:
    """Kill and reap our children that we did not start (orphans re-parented to us).

    Only those in another process group: an RQ work-horse's group, which its PrusaSlicer
    shares. A program this process runs itself (in our own group) is left alone."""
    ours = os.getpgrp()
    strays = []
    for pid in _children_of(os.getpid()):
        if pid in known:
            continue
        try:
            if os.getpgid(pid) == ours:
                continue
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            strays.append(pid)
        except (ProcessLookupError, ChildProcessError):
            pass
    return strays
