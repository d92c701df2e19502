"""How jobs and findings look to the API: plain JSON, messages in the reader's language."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from babel.numbers import format_decimal

from fabqueue.core.findings import N_, Finding
from fabqueue.core.pickup import PickupState
from fabqueue.core.reasons import decode, render
from fabqueue.i18n import babel_locale, gettext
from fabqueue.store.models import Job, JobEvent
from fabqueue.store.models_pickup import Pickup


def iso(value: datetime | None) -> str | None:
    """Times in the API are ISO 8601 with their zone (SQLite forgets it: those are UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def reason_fields(key: str, stored: str | None, locale: str) -> dict[str, Any]:
    """A stored reason as the API shows it: ``key`` in English (stable for scripts),
    ``key_text`` in the reader's language and ``key_code`` (None for typed words)."""
    found = decode(stored)
    return {key: render(stored) or None,
            f"{key}_text": render(stored, lambda s: gettext(locale, s)) or None,
            f"{key}_code": found.code if found else None}


#: Units a finding names in words (``{unit}`` of "drawn in {unit}").
UNIT_WORDS = {"inch": N_("inches"), "cm": N_("centimetres"), "m": N_("metres"),
              "mm": N_("millimetres")}


def localised(f: Finding, locale: str) -> Finding:
    """Numbers with the page's decimal separator; unit names in the reader's words."""
    bl = babel_locale(locale)
    params = {k: format_decimal(v, locale=bl) if isinstance(v, float) else
              gettext(locale, UNIT_WORDS[v]) if k == "unit" and v in UNIT_WORDS else v
              for k, v in f.params.items()}
    return Finding(f.code, f.text, params)


def render_findings(items: list[dict[str, Any]] | None, locale: str) -> list[str]:
    out = []
    for item in items or []:
        try:
            out.append(localised(Finding.from_dict(item), locale).render(
                lambda s: gettext(locale, s)))
        except (KeyError, IndexError, ValueError):
            out.append(str(item.get("text", item)))
    return out


def analysis_out(analysis: dict[str, Any] | None, locale: str) -> dict[str, Any] | None:
    if analysis is None:
        return None
    out = dict(analysis)
    out["errors"] = render_findings(analysis.get("errors"), locale)
    out["warnings"] = render_findings(analysis.get("warnings"), locale)
    out["error_codes"] = [e.get("code") for e in analysis.get("errors") or []]
    out["warning_codes"] = [w.get("code") for w in analysis.get("warnings") or []]
    return out


def job_out(job: Job, locale: str, *, full: bool = True, names: bool = False
            ) -> dict[str, Any]:
    """``names``: the reader may read a class pupil's name (``web.pupils``); otherwise a
    pupil is only its pseudonym, in the file name too."""
    from fabqueue.web.pupils import shown_file_name

    data: dict[str, Any] = {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        **reason_fields("status_reason", job.status_reason, locale),
        "owner": job.owner_id,
        "site": job.site_id,
        "material": job.material_id,
        "quality": job.quality,
        "copies": job.copies,
        "note": job.note,
        "file_name": shown_file_name(job, names),
        "file_format": job.file_format,
        "size_bytes": job.size_bytes,
        "priority": job.priority,
        "device": job.device_id,
        "pinned_device": job.pinned_device_id,
        "batch": job.batch_id,
        "student_name": job.student_name if names else None,
        "pupil": job.pupil,
        "files_purged": job.files_purged_at is not None,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "thumbnail_url": f"/api/jobs/{job.id}/thumbnail" if job.thumbnail_sha256 else None,
        "file_url": f"/api/jobs/{job.id}/file",
    }
    if full:
        data["analysis"] = analysis_out(job.analysis, locale)
        data["slicing"] = job.slice_result
        data["colour_map"] = job.colour_map  # the operation chosen per paint (lasers)
    else:
        a = job.analysis or {}
        data["summary"] = {k: a.get(k) for k in ("ok", "material_g", "estimated_seconds",
                                                  "cost", "volume_cm3", "size_mm", "bbox_mm")}
    return data


def event_out(ev: JobEvent, names: dict[int, str], locale: str = "en") -> dict[str, Any]:
    return {
        "id": ev.id, "at": iso(ev.at), "who": names.get(ev.actor_id) if ev.actor_id else None,
        "who_id": ev.actor_id, "action": ev.action, "from": ev.from_status,
        "to": ev.to_status, **reason_fields("why", ev.reason, locale), "data": ev.data,
    }


def pickup_out(p: Pickup | None, *, staff: bool = False) -> dict[str, Any] | None:
    """``pickup = {state, place, since}`` (staff also see the hand-over token's URL path)."""
    if p is None:
        return None
    out: dict[str, Any] = {"state": p.state, "place": p.place, "since": iso(p.since)}
    if p.state == PickupState.COLLECTED:
        out["collected_at"] = iso(p.collected_at)
    if p.state == PickupState.DISPOSED:
        out["disposed_at"] = iso(p.disposed_at)
    if staff:
        out["handover_url"] = f"/p/{p.token}"
        out["collected_by"] = p.collected_by_id
    return out
