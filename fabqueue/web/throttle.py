"""Sign-in throttling and where passwords are checked.

Failed sign-ins are counted per (account, client address), with looser ceilings per account
(a flood from many addresses) and per address (one address trying many accounts). Past a
few free failures each key is locked for a back-off that doubles and is capped at
``login_backoff_max_s``: an attacker can slow one account down, never lock it for good.
A locked key is answered 429 with ``Retry-After`` without checking the password at all.

The decision is atomic (:meth:`LoginThrottle.attempt`): each try is counted as a failure
under the lock *before* its password is hashed, and a right password takes it back. Checking
first and recording after the slow hash let a burst of 14 concurrent guesses all through.

The counters are kept in this process (the web is one process: ``fabqueue serve`` runs one
uvicorn worker); a restart forgets them, which only ever shortens a lockout.

Argon2 is deliberately slow, so it runs in a small pool of its own threads: a flood of
sign-ins waits there and the rest of the web keeps its turns.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

QUIET_RESET_S = 3600.0  # failures older than this are forgotten
MAX_KEYS = 50_000  # memory bound: the oldest records go first


@dataclass
class _Record:
    failures: int = 0
    locked_until: float = 0.0
    last: float = 0.0


class LoginThrottle:
    def __init__(self, *, free: int = 5, account_free: int = 50, address_free: int = 100,
                 base_s: float = 1.0, max_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.free = {"pair": free, "account": account_free, "address": address_free}
        self.base_s, self.max_s = base_s, max_s
        self.clock = clock
        self._records: dict[tuple[str, ...], _Record] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _keys(account: str, address: str) -> list[tuple[str, ...]]:
        account = account.strip().lower()
        return [("pair", account, address), ("account", account), ("address", address)]

    def retry_after(self, account: str, address: str) -> float:
        """Seconds until this account may be tried from this address again (0: now)."""
        now = self.clock()
        with self._lock:
            waits = [r.locked_until - now for k in self._keys(account, address)
                     if (r := self._records.get(k)) is not None]
        return max([0.0, *waits])

    def attempt(self, account: str, address: str) -> float:
        """Atomically: refused (seconds to wait, > 0, nothing counted), or allowed (0) and
        counted as a failure until :meth:`succeeded` takes it back."""
        now = self.clock()
        with self._lock:
            waits = [r.locked_until - now for k in self._keys(account, address)
                     if (r := self._records.get(k)) is not None]
            wait = max([0.0, *waits])
            if wait > 0:
                return wait
            self._count(now, account, address)
            return 0.0

    def failed(self, account: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            self._count(now, account, address)

    def _count(self, now: float, account: str, address: str) -> None:
        """One more failure on each key (the caller holds ``self._lock``)."""
        for key in self._keys(account, address):
            r = self._records.get(key)
            if r is None or now - r.last > QUIET_RESET_S:
                r = self._records[key] = _Record()
            r.failures += 1
            r.last = now
            over = r.failures - self.free[key[0]]
            if over > 0:
                r.locked_until = now + min(self.max_s, self.base_s * 2 ** min(over - 1, 30))
        if len(self._records) > MAX_KEYS:
            for key in sorted(self._records, key=lambda k: self._records[k].last)[
                    : len(self._records) - MAX_KEYS]:
                del self._records[key]

    def succeeded(self, account: str, address: str) -> None:
        """The right password: this account from this address starts afresh, and the
        address's count gives back the try :meth:`attempt` counted."""
        with self._lock:
            keys = self._keys(account, address)
            for key in keys[:2]:
                self._records.pop(key, None)
            r = self._records.get(keys[2])
            if r is not None and r.failures > 0:
                r.failures -= 1


def retry_after_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
POOL_THREADS = 2


def hashing_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="fabqueue-argon2")
        return _pool


async def in_hashing_pool(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(hashing_pool(), fn, *args)


def client_address(scope_client: Any) -> str:
    return str(scope_client[0]) if scope_client else "unknown"
