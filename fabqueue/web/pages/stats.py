"""Statistics for staff: jobs, material and hours per site and month, success rate, machine
utilisation, estimate accuracy; an SVG chart drawn on the server, and CSV export."""

from __future__ import annotations

import calendar
import io
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from babel.dates import format_date
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.core.access import Role
from fabqueue.i18n import babel_locale, gettext
from fabqueue.store.models import Device, Job, User
from fabqueue.web.csv_export import SafeWriter
from fabqueue.web.deps import get_db, optional_user, request_locale
from fabqueue.web.pages.common import forbidden_unless_staff, redirect
from fabqueue.web.pages.render import render

router = APIRouter(include_in_schema=False)
ENDED_BADLY = ("failed", "interrupted")


#: How much faster than real time a simulated printer runs unless its settings say
#: (fabqueue.queue.machines.build_driver uses the same default).
SIMULATED_SPEED = 20.0


@dataclass
class MonthRow:
    site: str
    month: str  # YYYY-MM
    jobs: int = 0
    done: int = 0
    failed: int = 0
    grams: float = 0.0
    hours: float = 0.0
    ratios: list[float] = field(default_factory=list)
    machines: int = 0
    now: datetime | None = None  # the current month counts only its hours so far

    @property
    def success_rate(self) -> float | None:
        ended = self.done + self.failed
        return self.done / ended if ended else None

    @property
    def available_hours(self) -> float:
        year, month = map(int, self.month.split("-"))
        start = datetime(year, month, 1, tzinfo=UTC)
        days = calendar.monthrange(year, month)[1]
        hours = days * 24.0
        if self.now is not None and (self.now.year, self.now.month) == (year, month):
            hours = (self.now - start).total_seconds() / 3600
        return max(hours, 1.0)

    @property
    def utilisation(self) -> float | None:
        if not self.machines:
            return None
        return min(self.hours / (self.machines * self.available_hours), 1.0)

    @property
    def estimate_ratio(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None


def machine_seconds(actual: float, device: Device | None) -> float:
    """A simulated printer prints ``simulated_speed`` times faster than the real one it
    stands for: its jobs count in that real machine's time, so utilisation and the
    actual ÷ estimate ratio mean the same as for a real printer."""
    if device is not None and device.driver == "simulated":
        speed = float((device.settings or {}).get("simulated_speed") or SIMULATED_SPEED)
        return actual * speed
    return actual


def month_rows(db: Session, user: User, now: datetime | None = None) -> list[MonthRow]:
    now = now or datetime.now(UTC)
    q = select(Job.site_id, Job.created_at, Job.status, Job.analysis, Job.copies,
               Job.actual_seconds, Job.device_id)
    if user.role != Role.ADMIN:
        q = q.where(Job.site_id == user.site_id)
    devices = {d.id: d for d in db.scalars(select(Device))}
    machines: dict[str | None, int] = defaultdict(int)
    for d in devices.values():
        if d.enabled:
            machines[d.site_id] += 1
    rows: dict[tuple[str, str], MonthRow] = {}
    for site, created, status, analysis, copies, actual, device_id in db.execute(q):
        created = created if created.tzinfo else created.replace(tzinfo=UTC)
        key = (site or "–", created.strftime("%Y-%m"))
        row = rows.get(key)
        if row is None:
            row = rows[key] = MonthRow(*key, machines=machines.get(site, 0), now=now)
        row.jobs += 1
        a = analysis or {}
        seconds = machine_seconds(actual, devices.get(device_id)) if actual else 0.0
        # A machine is busy whatever the outcome: failed and interrupted jobs count too.
        row.hours += seconds / 3600
        if status == "done":
            row.done += 1
            row.grams += (a.get("material_g") or 0) * (copies or 1)
            if seconds and a.get("estimated_seconds"):
                row.ratios.append(seconds / a["estimated_seconds"])
        elif status in ENDED_BADLY:
            row.failed += 1
    return sorted(rows.values(), key=lambda r: (r.month, r.site))


def month_label(month: str, locale: str) -> str:
    year, mon = map(int, month.split("-"))
    return format_date(date(year, mon, 1), "LLL yy", locale=babel_locale(locale))


def bar_chart(rows: list[MonthRow], title: str, locale: str = "en") -> str:
    """Jobs per month as an accessible SVG of a fixed shape (it scales to its box on a
    phone instead of growing with the number of months): months on the x axis, a y axis
    with a few round ticks, each bar's value above it."""
    from markupsafe import escape

    per_month: dict[str, int] = defaultdict(int)
    for r in rows:
        per_month[r.month] += r.jobs
    months = sorted(per_month)[-12:]
    w, h, left, bottom, top_pad = 600, 240, 44, 34, 22
    top = max((per_month[m] for m in months), default=0)
    step = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10 ** 9)
                if top / s <= 5)
    scale_top = max(step * -(-top // step), step)
    plot_h = h - bottom - top_pad
    parts = [f'<line x1="{left}" y1="{h - bottom}" x2="{w - 6}" y2="{h - bottom}" '
             'stroke="#333"/>',
             f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{h - bottom}" stroke="#333"/>']
    for tick in range(0, scale_top + 1, step):
        y = h - bottom - plot_h * tick / scale_top
        parts.append(f'<line x1="{left - 4}" y1="{y:.1f}" x2="{w - 6}" y2="{y:.1f}" '
                     f'stroke="#d5dae0"/><text x="{left - 8}" y="{y + 4:.1f}" '
                     f'font-size="13" text-anchor="end">{tick}</text>')
    slot = (w - left - 10) / max(len(months), 1)
    bar_w = min(48.0, slot * 0.7)
    for i, m in enumerate(months):
        value = per_month[m]
        bh = plot_h * value / scale_top
        x = left + 5 + i * slot + (slot - bar_w) / 2
        label = escape(month_label(m, locale))
        parts.append(
            f'<rect x="{x:.1f}" y="{h - bottom - bh:.1f}" width="{bar_w:.1f}" '
            f'height="{bh:.1f}" fill="#0b5cad"><title>{label}: {value}</title></rect>'
            f'<text x="{x + bar_w / 2:.1f}" y="{h - bottom - bh - 5:.1f}" font-size="14" '
            f'font-weight="600" text-anchor="middle">{value}</text>'
            f'<text x="{x + bar_w / 2:.1f}" y="{h - 12}" font-size="13" '
            f'text-anchor="middle">{label}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" role="img" '
            f'aria-label="{escape(title)}" class="chart">{"".join(parts)}</svg>')


@router.get("/staff/stats")
def stats_page(request: Request, user: User | None = Depends(optional_user),
               db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    if (denied := forbidden_unless_staff(request, user)) is not None:
        return denied
    rows = month_rows(db, user)
    locale = request_locale(request, user)
    title = gettext(locale, "Jobs per month")
    return render(request, "stats.html", user=user, rows=rows,
                  chart=bar_chart(rows, title, locale))


@router.get("/staff/stats.csv")
def stats_csv(request: Request, user: User | None = Depends(optional_user),
              db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    if (denied := forbidden_unless_staff(request, user)) is not None:
        return denied
    out = io.StringIO()
    w = SafeWriter(out)  # names and file names are the users' own text
    w.writerow(["site", "month", "jobs", "done", "failed", "material_g", "machine_hours",
                "success_rate", "utilisation", "actual_to_estimate"])
    for r in month_rows(db, user):
        w.writerow([r.site, r.month, r.jobs, r.done, r.failed, round(r.grams, 1),
                    round(r.hours, 2),
                    "" if r.success_rate is None else round(r.success_rate, 3),
                    "" if r.utilisation is None else round(r.utilisation, 4),
                    "" if r.estimate_ratio is None else round(r.estimate_ratio, 3)])
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition":
                             f'attachment; filename="fabqueue-stats-{stamp}.csv"'})
