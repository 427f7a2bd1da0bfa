"""`bot orders import FILE.csv`: a spreadsheet export of orders, one row each, header row first.

The columns are the API's field names (order_number, customer_phone, customer_name, device_model,
problem, status, quoted_price, technician). Every row is checked like an API request first; bad rows
are reported as `line N: field: reason` and skipped, good rows go through the same OrderService as the
API, so a status change by import notifies the customer too.

Good rows are written `BATCH_SIZE` to a transaction: a commit waits for the disk (SQLite's
synchronous=FULL), so 20,000 one-row transactions take over a minute where 40 take seconds. A batch that
fails as a whole (an order the API created meanwhile, a database hiccup) is rolled back and its rows are
tried one by one, so a row that cannot be saved is reported with its line and never costs its
batch-mates their place.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from bot.db.models import OrderSource
from bot.orders.schemas import FIELDS, OrderIn, field_errors
from bot.orders.service import OrderChange, OrderService

log = logging.getLogger(__name__)

BATCH_SIZE = 500
"""Rows per transaction."""
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


async def import_orders(text: str, service: OrderService, batch_size: int = BATCH_SIZE) -> ImportReport:
    """Import every good row of the CSV `text`; raises ImportFileError when the header is unusable."""
    report = ImportReport()
    rows = _rows(text)
    header = _header(next(rows, None))
    good: list[tuple[int, OrderIn]] = []
    for line, cells in rows:
        if len(cells) > len(header):
            report.bad.append(BadRow(line, "row", f"{len(cells)} cells, but the header has {len(header)}"))
            continue
        values = {name: cell.strip() for name, cell in zip(header, cells, strict=False) if cell.strip()}
        try:
            good.append((line, OrderIn.model_validate(values, context=service.validation_context)))
        except ValidationError as exc:
            report.bad.extend(BadRow(line, error.field, error.message) for error in field_errors(exc))
    for start in range(0, len(good), batch_size):
        for change in await _save(good[start : start + batch_size], service, report):
            if change.created:
                report.imported += 1
            else:
                report.updated += 1
    report.bad.sort(key=lambda problem: problem.line)  # stable: a row's problems keep their order
    return report


async def _save(
    batch: Sequence[tuple[int, OrderIn]], service: OrderService, report: ImportReport
) -> list[OrderChange]:
    """One transaction for the batch; if it fails, one per row, and a row that fails alone is reported."""
    try:
        return await service.upsert_many([order for _, order in batch], OrderSource.IMPORT)
    except Exception as exc:  # rolled back: nothing of the batch was written
        log.warning(
            "lines %d-%d: saving them together failed (%s); one by one", batch[0][0], batch[-1][0], exc
        )
    changes = []
    for line, order in batch:
        try:
            changes.append(await service.upsert(order, OrderSource.IMPORT))
        except Exception as exc:
            report.bad.append(BadRow(line, "row", f"could not be saved: {exc}"))
    return changes


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
