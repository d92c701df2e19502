"""Statistics for staff: jobs, material and hours per site and month, success rate, machine
utilisation, estimate accuracy; an SVG chart drawn on the server, and CSV export."""

from __future__ import annotations

import calendar
import csv
import io
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabqueue.core.access import Role
from fabqueue.i18n import gettext
from fabqueue.store.models import Device, Job, User
from fabqueue.web.deps import get_db, optional_user, request_locale
from fabqueue.web.pages.common import forbidden_unless_staff, redirect
from fabqueue.web.pages.render import render

router = APIRouter(include_in_schema=False)
ENDED_BADLY = ("failed", "interrupted")


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

    @property
    def success_rate(self) -> float | None:
        ended = self.done + self.failed
        return self.done / ended if ended else None

    @property
    def utilisation(self) -> float | None:
        if not self.machines:
            return None
        year, month = map(int, self.month.split("-"))
        hours_in_month = calendar.monthrange(year, month)[1] * 24
        return self.hours / (self.machines * hours_in_month)

    @property
    def estimate_ratio(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None


def month_rows(db: Session, user: User) -> list[MonthRow]:
    q = select(Job.site_id, Job.created_at, Job.status, Job.analysis, Job.copies,
               Job.actual_seconds)
    if user.role != Role.ADMIN:
        q = q.where(Job.site_id == user.site_id)
    machines = dict(db.execute(select(Device.site_id, func.count()).group_by(Device.site_id))
                    .tuples().all())
    rows: dict[tuple[str, str], MonthRow] = {}
    for site, created, status, analysis, copies, actual in db.execute(q):
        created = created if created.tzinfo else created.replace(tzinfo=UTC)
        key = (site or "–", created.strftime("%Y-%m"))
        row = rows.get(key)
        if row is None:
            row = rows[key] = MonthRow(*key, machines=machines.get(site, 0))
        row.jobs += 1
        a = analysis or {}
        if status == "done":
            row.done += 1
            row.grams += (a.get("material_g") or 0) * (copies or 1)
            if actual:
                row.hours += actual / 3600
                if a.get("estimated_seconds"):
                    row.ratios.append(actual / a["estimated_seconds"])
        elif status in ENDED_BADLY:
            row.failed += 1
    return sorted(rows.values(), key=lambda r: (r.month, r.site))


def bar_chart(rows: list[MonthRow], title: str) -> str:
    """Jobs per month as a small accessible SVG (no JavaScript, scales on a phone)."""
    per_month: dict[str, int] = defaultdict(int)
    for r in rows:
        per_month[r.month] += r.jobs
    months = sorted(per_month)[-12:]
    top = max(per_month.values(), default=1) or 1
    w, h, pad = 40 * max(len(months), 1) + 40, 200, 30
    bars = []
    for i, m in enumerate(months):
        bh = (h - 2 * pad) * per_month[m] / top
        x = 30 + i * 40
        bars.append(f'<rect x="{x}" y="{h - pad - bh:.1f}" width="28" height="{bh:.1f}" '
                    f'fill="#0b5cad"><title>{m}: {per_month[m]}</title></rect>'
                    f'<text x="{x + 14}" y="{h - 12}" font-size="10" text-anchor="middle">'
                    f'{m[2:]}</text><text x="{x + 14}" y="{h - pad - bh - 4:.1f}" '
                    f'font-size="11" text-anchor="middle">{per_month[m]}</text>')
    from markupsafe import escape
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" role="img" '
            f'aria-label="{escape(title)}" class="chart">{"".join(bars)}'
            f'<line x1="25" y1="{h - pad}" x2="{w}" y2="{h - pad}" stroke="#333"/></svg>')


@router.get("/staff/stats")
def stats_page(request: Request, user: User | None = Depends(optional_user),
               db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    if (denied := forbidden_unless_staff(request, user)) is not None:
        return denied
    rows = month_rows(db, user)
    title = gettext(request_locale(request, user), "Jobs per month")
    return render(request, "stats.html", user=user, rows=rows, chart=bar_chart(rows, title))


@router.get("/staff/stats.csv")
def stats_csv(request: Request, user: User | None = Depends(optional_user),
              db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    if (denied := forbidden_unless_staff(request, user)) is not None:
        return denied
    out = io.StringIO()
    w = csv.writer(out)
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
