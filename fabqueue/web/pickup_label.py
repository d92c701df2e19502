"""The pickup label: a PDF page 62 mm wide (label printers' common roll; on A4 it prints as
a strip to cut out) with a QR code of the hand-over URL, the job number, the place and the
date. It carries no name: a label on a public shelf must not say whose part it is."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import segno
from fpdf import FPDF

WIDTH_MM = 62.0
HEIGHT_MM = 90.0
QR_MM = 46.0
# a font that has Lithuanian and Russian letters, for a place named so; core Helvetica else
FONTS = (Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
         Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"))


def _font(pdf: FPDF) -> tuple[str, bool]:
    for path in FONTS:
        if path.exists():
            pdf.add_font("label", "", str(path))
            return "label", True
    return "helvetica", False


def label_pdf(*, url: str, job_id: int, place: str | None, day: date) -> bytes:
    """One label; ``url`` is what the QR code carries (``{public URL}/p/{token}``)."""
    pdf = FPDF(unit="mm", format=(WIDTH_MM, HEIGHT_MM))
    pdf.set_margins(4, 4, 4)
    pdf.set_auto_page_break(False)
    pdf.set_title(f"FabQueue #{job_id}")
    pdf.set_creator("FabQueue")
    pdf.add_page()
    qr = segno.make(url, error="m")
    png = io.BytesIO()
    qr.save(png, kind="png", scale=10, border=2)  # a quiet zone for phone cameras
    png.seek(0)
    pdf.image(png, x=(WIDTH_MM - QR_MM) / 2, y=3, w=QR_MM, h=QR_MM)
    family, unicode = _font(pdf)

    def text(s: str) -> str:
        return s if unicode else s.encode("latin-1", "replace").decode("latin-1")

    pdf.set_y(3 + QR_MM + 2)
    pdf.set_font(family, size=22)
    pdf.cell(0, 10, text(f"#{job_id}"), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, size=18)
    pdf.cell(0, 9, text(place or "—"), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, size=12)
    pdf.cell(0, 7, day.isoformat(), align="C", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
