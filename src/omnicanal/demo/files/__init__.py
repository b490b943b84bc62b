"""The retailer's offline files, in the formats the importers read.

- `till.csv` (`till`): the stores' till export, as French tills write it: cp1252, `;`,
  decimal commas, `23/11/2026 14:05:00` dates, one row per receipt line (sales, returns
  as negative quantities, click & collect pick-ups with the e-shop order number).
- `customers.xlsx` (`crm`): the CRM export, one row per customer record.
- `attendance.csv`, `calls.csv`, `survey.csv` (`contacts`): workshop and street-marketing
  sign-up sheets (UTF-8 with BOM, `;`), call-centre contacts, NPS and CSAT answers.

`writer` holds the headers and the open files. The world-level files (catalogue, stock,
costs) are in `shop_files`.

Hand-typed identifiers carry the damage of `noise`. Every identifier written, and every
row's import key, is handed back with its true person for the ground truth.
"""

from __future__ import annotations

from omnicanal.demo.chunk import Chunk
from omnicanal.demo.files.contacts import attendance, calls, survey
from omnicanal.demo.files.crm import customers
from omnicanal.demo.files.till import till
from omnicanal.demo.files.writer import (
    ATTENDANCE_HEADER,
    CALLS_HEADER,
    CUSTOMERS_HEADER,
    SURVEY_HEADER,
    TILL_HEADER,
    Writer,
    decimal_fr,
)
from omnicanal.demo.records import Identifiers

__all__ = [
    "ATTENDANCE_HEADER",
    "CALLS_HEADER",
    "CUSTOMERS_HEADER",
    "SURVEY_HEADER",
    "TILL_HEADER",
    "Writer",
    "attendance",
    "calls",
    "customers",
    "decimal_fr",
    "survey",
    "till",
    "write_chunk",
]


def write_chunk(w: Writer, ch: Chunk, ids: Identifiers) -> None:
    """Write one chunk's rows in every person file."""
    till(w, ch, ids)
    customers(w, ch, ids)
    attendance(w, ch, ids)
    calls(w, ch, ids)
    survey(w, ch, ids)
