"""Queue and key names: one place, so every process agrees."""

from __future__ import annotations

#: Analysis of uploads (mesh, drawing, G-code checks): short, CPU-bound.
ANALYSIS = "analysis"
#: Slicing and laser program generation after approval.
SLICING = "slicing"


def device_queue(device_id: str) -> str:
    """Jobs pinned to one machine."""
    return f"device:{device_id}"


def pool_queue(site_id: str, machine_class: str) -> str:
    """Jobs for any compatible machine of a class at a site."""
    return f"pool:{site_id}:{machine_class}"


def analysis_job_id(job_id: int) -> str:
    return f"analyse-{job_id}"


def slicing_job_id(job_id: int) -> str:
    return f"slice-{job_id}"


def control_key(device_id: str) -> str:
    """A Redis list the device worker watches for staff commands (pause, stop …)."""
    return f"fabqueue:control:{device_id}"
