"""Spoolman (https://github.com/Donkie/Spoolman), a host like a printer host but for
material: its REST API under ``/api/v1``, each call over within a deadline (the shared
:class:`~fabqueue.drivers.http.HttpHost`), so a hung Spoolman never holds up the queue side
that talks to it. A refused or timed-out connection is ``DriverOffline`` (try again later);
an answer outside 2xx is ``DriverError``.

Spoolman keeps only a running total of use and has no idempotency key: a ``use`` whose answer
was lost may have landed. Callers keep their own ledger and compare ``used_weight`` before
sending again (:mod:`fabqueue.queue.spoolman_sync`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fabqueue.drivers.http import HttpHost

TIMEOUT_S = 5.0


@dataclass(frozen=True)
class RemoteSpool:
    """A spool as Spoolman describes it (the parts FabQueue keeps)."""

    id: int
    material: str
    colour: str
    brand: str
    lot: str
    net_g: float
    empty_g: float
    remaining_g: float
    used_g: float
    place: str
    archived: bool

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RemoteSpool:
        f = d.get("filament") or {}
        vendor = f.get("vendor") or {}
        net = d.get("initial_weight") or f.get("weight") or 0.0
        used = float(d.get("used_weight") or 0.0)
        remaining = d.get("remaining_weight")
        return cls(id=int(d["id"]), material=str(f.get("material") or f.get("name") or "?"),
                   colour=str(f.get("color_hex") or ""), brand=str(vendor.get("name") or ""),
                   lot=str(d.get("lot_nr") or ""), net_g=float(net),
                   empty_g=float(d.get("spool_weight") or f.get("spool_weight") or 0.0),
                   remaining_g=float(remaining if remaining is not None else net - used),
                   used_g=used, place=str(d.get("location") or ""),
                   archived=bool(d.get("archived")))


class Spoolman:
    def __init__(self, url: str, timeout_s: float = TIMEOUT_S) -> None:
        self.http = HttpHost("Spoolman", url, timeout_s=timeout_s)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Spoolman:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def info(self) -> dict[str, Any]:
        return dict(self.http.json("GET", "/api/v1/info") or {})

    def spools(self) -> list[RemoteSpool]:
        body = self.http.json("GET", "/api/v1/spool", params={"allow_archived": "true"})
        return [RemoteSpool.from_json(d) for d in body or []]

    def spool(self, spool_id: int) -> RemoteSpool:
        return RemoteSpool.from_json(self.http.json("GET", f"/api/v1/spool/{int(spool_id)}"))

    def use(self, spool_id: int, grams: float) -> RemoteSpool:
        """``PUT /api/v1/spool/{id}/use``: take ``grams`` off the spool."""
        return RemoteSpool.from_json(self.http.json(
            "PUT", f"/api/v1/spool/{int(spool_id)}/use", json={"use_weight": float(grams)}))

    def measure(self, spool_id: int, gross_g: float) -> RemoteSpool:
        """``PUT /api/v1/spool/{id}/measure``: the spool weighed with its reel."""
        return RemoteSpool.from_json(self.http.json(
            "PUT", f"/api/v1/spool/{int(spool_id)}/measure", json={"weight": float(gross_g)}))
