"""Read a CSV, Parquet or XLSX file into typed rows, with a report of every bad cell.

Files come from tills, CRMs, spreadsheets and ad platforms, so the reader guesses
what people rarely say: the format (from the first bytes, then the extension), the
encoding of a CSV (BOM, valid UTF-8, else charset-normalizer among the Western
single-byte code pages), its delimiter, and which file column is which (names
compared without case, accents, spaces, `-` or `_`, with aliases). Values are
converted by type: French or ISO decimals to integer cents, French or ISO dates
(naive times are Europe/Paris), yes/no booleans.

Rows are read in chunks (pyarrow's streaming CSV reader, Parquet row groups,
openpyxl's read-only mode) so a file of millions of rows never sits in memory.
A bad cell is reported with the file, its line as a spreadsheet shows it (the
header is line 1) and the column, and the row is left out; the caller decides
what a bad row means (for an import: nothing is written).

Modules: `columns` (a kind's columns, header matching), `convert` (cell
converters), `detect` (format, encoding, delimiter), `sources` (one reader per
format), `reader` (`TabularFile`) and `errors` (bad cells, unreadable files).
"""
