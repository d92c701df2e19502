"""CSV downloads that a spreadsheet opens as data, never as formulas.

A pupil's name or a file name like ``=HYPERLINK("http://…")`` or ``@SUM(…)`` is run as a
formula by Excel, LibreOffice and Google Sheets. As OWASP recommends, a text cell that starts
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``; numbers that
FabQueue itself writes stay numbers.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    """``csv.writer`` whose text cells are neutralised (see the module's docstring)."""

    def __init__(self, out: TextIO) -> None:
        self._writer = csv.writer(out)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([safe_cell(cell) for cell in row])
