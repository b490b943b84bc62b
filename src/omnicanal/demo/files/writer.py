"""The offline files' headers and the writer that holds them open chunk after chunk."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from omnicanal.demo.world import World
from omnicanal.demo.xlsx import SheetWriter

TILL_HEADER = (
    "Ticket",
    "Magasin",
    "Date",
    "line",
    "Référence",
    "Libellé",
    "Rayon",
    "Marque",
    "Qté",
    "Prix unitaire",
    "currency",
    "Carte fidélité",
    "Email",
    "Téléphone",
    "Prénom",
    "Nom",
    "Code postal",
    "fulfilment",
    "Commande",
    "Remise",
)
CUSTOMERS_HEADER = (
    "customer_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "birth_date",
    "street",
    "postcode",
    "city",
    "country",
    "card",
    "optin_email",
    "optin_sms",
    "optin_post",
    "consent_date",
    "consent_wording",
    "signup_source",
    "created_at",
)
ATTENDANCE_HEADER = (
    "event_name",
    "event_type",
    "date",
    "location",
    "first_name",
    "last_name",
    "email",
    "phone",
    "postcode",
    "card",
    "attendee_id",
)
CALLS_HEADER = (
    "contact_id",
    "datetime",
    "first_name",
    "last_name",
    "phone",
    "email",
    "card",
    "postcode",
    "reason",
    "outcome",
    "order_ref",
    "duration_s",
)
SURVEY_HEADER = (
    "response_id",
    "datetime",
    "kind",
    "score",
    "comment",
    "channel",
    "email",
    "phone",
    "card",
    "customer_id",
)


def decimal_fr(value: float) -> str:
    """Format an amount with a decimal comma, as French spreadsheets and tills do."""
    return f"{value:.2f}".replace(".", ",")


class Writer:
    """Writes the offline files chunk by chunk, then the world-level files."""

    def __init__(self, world: World, folder: Path, customers_format: str = "xlsx") -> None:
        self.world, self.folder = world, folder
        folder.mkdir(parents=True, exist_ok=True)
        self.start = datetime(
            world.calendar.start.year, world.calendar.start.month, world.calendar.start.day
        )
        self.paths = {
            "till": folder / "till.csv",
            "customers": folder / f"customers.{customers_format}",
            "attendance": folder / "attendance.csv",
            "calls": folder / "calls.csv",
            "survey": folder / "survey.csv",
            "catalogue": folder / "catalogue.csv",
            "stock": folder / "stock.parquet",
            "costs": folder / "costs.csv",
        }
        self._handles: list[TextIO] = []
        self.till = self._csv("till", "cp1252", ";", TILL_HEADER)
        self.attendance = self._csv("attendance", "utf-8-sig", ";", ATTENDANCE_HEADER)
        self.calls = self._csv("calls", "utf-8", ",", CALLS_HEADER)
        self.survey = self._csv("survey", "utf-8", ",", SURVEY_HEADER)
        self.customers = _CustomerSheet(self.paths["customers"], customers_format)
        self.rows = dict.fromkeys(("till", "customers", "attendance", "calls", "survey"), 0)

    def _csv(self, kind: str, encoding: str, delimiter: str, header: tuple[str, ...]) -> Any:
        handle = self.paths[kind].open("w", encoding=encoding, errors="replace", newline="")
        self._handles.append(handle)
        out = csv.writer(handle, delimiter=delimiter, lineterminator="\r\n")
        out.writerow(header)
        return out

    def when(self, t: float) -> datetime:
        """Return the Paris wall-clock time of a time in days, to the second."""
        return (self.start + timedelta(days=t)).replace(microsecond=0)

    def close(self) -> None:
        """Close the files written chunk by chunk."""
        for handle in self._handles:
            handle.close()
        self.customers.close()


class _CustomerSheet:
    """The CRM export: an XLSX sheet written row by row (or CSV beyond a sheet's size)."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.sheet: SheetWriter | None = None
        if fmt == "xlsx":
            self.sheet = SheetWriter(path, "Clients", CUSTOMERS_HEADER)
        else:
            self.handle = path.open("w", encoding="utf-8", newline="")
            self.out = csv.writer(self.handle, delimiter=",", lineterminator="\r\n")
            self.out.writerow(CUSTOMERS_HEADER)

    def append(self, row: list[str]) -> None:
        """Add one customer record."""
        if self.sheet is not None:
            self.sheet.append(row)
        else:
            self.out.writerow(row)

    def close(self) -> None:
        """Finish the file."""
        if self.sheet is not None:
            self.sheet.close()
        else:
            self.handle.close()
