"""A streaming writer of one-sheet XLSX files of text cells.

A CRM export of a million customers is a million rows; openpyxl's write-only mode,
without lxml, spends about 200 µs a row on them. The rows here are plain text, so the
sheet is written directly as SpreadsheetML with inline strings (what Excel, LibreOffice,
openpyxl and pandas all read), streamed to a temporary file and zipped at the end with
fixed timestamps, so the same rows always give the same bytes.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

_STAMP = (1980, 1, 1, 0, 0, 0)
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="xl/workbook.xml" Type="http://schemas.openxmlformats.org/'
    'officeDocument/2006/relationships/officeDocument"/>'
    "</Relationships>"
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="{name}" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="worksheets/sheet1.xml" Type="http://schemas.openxmlformats.org/'
    'officeDocument/2006/relationships/worksheet"/>'
    '<Relationship Id="rId2" Target="styles.xml" Type="http://schemas.openxmlformats.org/'
    'officeDocument/2006/relationships/styles"/>'
    "</Relationships>"
)
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
_SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
)
_SHEET_TAIL = "</sheetData></worksheet>"
_KEEP = ' xml:space="preserve"'  # leading or trailing spaces are part of the value
MAX_ROWS = 1_048_576  # rows of a sheet, the header included


def column_name(index: int) -> str:
    """Return the spreadsheet name of a 0-based column: 0 -> A, 26 -> AA."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


class SheetWriter:
    """Write rows of text to a one-sheet XLSX file; `close()` finishes the file."""

    def __init__(self, path: Path, sheet: str, header: Sequence[str]) -> None:
        self.path, self.sheet = path, sheet
        self.columns = [column_name(i) for i in range(len(header))]
        self.rows = 0
        self._body = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._body.write(_SHEET_HEAD)
        self.append(header)

    def append(self, row: Sequence[str | None]) -> None:
        """Add one row; empty values leave their cell empty."""
        if self.rows >= MAX_ROWS:
            raise ValueError(f"a sheet holds at most {MAX_ROWS} rows; write CSV instead")
        self.rows += 1
        n = self.rows
        cells = "".join(
            f'<c r="{col}{n}" t="inlineStr"><is><t{_KEEP}>{escape(value)}</t></is></c>'
            for col, value in zip(self.columns, row, strict=False)
            if value
        )
        self._body.write(f'<row r="{n}">{cells}</row>')

    def close(self) -> None:
        """Zip the sheet and the parts around it into the XLSX file."""
        self._body.write(_SHEET_TAIL)
        self._body.seek(0)
        parts = {
            "[Content_Types].xml": _CONTENT_TYPES,
            "_rels/.rels": _ROOT_RELS,
            "xl/workbook.xml": _WORKBOOK.format(name=escape(self.sheet, {'"': "&quot;"})),
            "xl/_rels/workbook.xml.rels": _WORKBOOK_RELS,
            "xl/styles.xml": _STYLES,
        }
        with zipfile.ZipFile(self.path, "w", zipfile.ZIP_DEFLATED) as book:
            for name, text in parts.items():
                book.writestr(zipfile.ZipInfo(name, _STAMP), text, zipfile.ZIP_DEFLATED)
            info = zipfile.ZipInfo("xl/worksheets/sheet1.xml", _STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            with book.open(info, "w", force_zip64=True) as sheet:
                while chunk := self._body.read(1 << 20):
                    sheet.write(chunk.encode("utf-8"))
        self._body.close()
