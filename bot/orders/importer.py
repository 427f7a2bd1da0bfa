"""`bot orders import FILE.csv`: a spreadsheet export of orders, one row each, header row first.

The columns are the API's field names (order_number, customer_phone, customer_name, device_model,
problem, status, quoted_price, technician). Every row is checked like an API request; bad rows are
reported as `line N: field: reason` and skipped, good rows go through the same OrderService as the
API, one transaction each, so a status change by import notifies the customer too.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from bot.db.models import OrderSource
from bot.orders.schemas import FIELDS, OrderIn, field_errors
from bot.orders.service import OrderService

REQUIRED_COLUMNS = ("order_number", "customer_phone", "customer_name", "device_model", "problem")


class ImportFileError(Exception):
    """The file as a whole cannot be imported (unreadable, or its header is wrong)."""


@dataclass(frozen=True)
class BadRow:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass
class ImportReport:
    imported: int = 0
    """New orders."""
    updated: int = 0
    """Orders that were there already (changed or not)."""
    bad: list[BadRow] = field(default_factory=list)

    @property
    def bad_rows(self) -> int:
        return len({problem.line for problem in self.bad})

    def summary(self) -> str:
        return f"{self.imported} imported, {self.updated} updated, {self.bad_rows} bad rows"


def read_csv(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # spreadsheet exports often start with a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFileError(f"{path}: cannot be read: {exc}") from None


async def import_orders(text: str, service: OrderService) -> ImportReport:
    """Import every good row of the CSV `text`; raises ImportFileError when the header is unusable."""
    report = ImportReport()
    rows = _rows(text)
    header = _header(next(rows, None))
    for line, cells in rows:
        if len(cells) > len(header):
            report.bad.append(BadRow(line, "row", f"{len(cells)} cells, but the header has {len(header)}"))
            continue
        values = {name: cell.strip() for name, cell in zip(header, cells, strict=False) if cell.strip()}
        try:
            order = OrderIn.model_validate(values, context=service.validation_context)
        except ValidationError as exc:
            report.bad.extend(BadRow(line, error.field, error.message) for error in field_errors(exc))
            continue
        change = await service.upsert(order, OrderSource.IMPORT)
        if change.created:
            report.imported += 1
        else:
            report.updated += 1
    return report


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number where the row starts, its cells); blank lines are skipped, quoted line breaks kept."""
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFileError(f"line {start}: not valid CSV: {exc}") from None
        if any(cell.strip() for cell in cells):
            yield start, cells


def _header(first: tuple[int, list[str]] | None) -> list[str]:
    if first is None:
        raise ImportFileError("the file is empty; the first line must name the columns")
    line, cells = first
    header = [cell.strip() for cell in cells]
    if unknown := [name for name in header if name not in FIELDS]:
        raise ImportFileError(
            f"line {line}: unknown column(s) {', '.join(unknown)}; the columns are: {', '.join(FIELDS)}"
        )
    if missing := [name for name in REQUIRED_COLUMNS if name not in header]:
        raise ImportFileError(f"line {line}: missing column(s): {', '.join(missing)}")
    if duplicated := sorted({name for name in header if header.count(name) > 1}):
        raise ImportFileError(f"line {line}: column(s) named twice: {', '.join(duplicated)}")
    return header
