"""Reading tabular files: formats, encodings, delimiters, headers, converters, bad cells."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnicanal.collect.tabular.columns import Column, ColumnType, header_key, parse_mapping
from omnicanal.collect.tabular.convert import (
    PARIS,
    to_bool,
    to_cents,
    to_date,
    to_datetime,
    to_int,
)
from omnicanal.collect.tabular.errors import TabularError
from omnicanal.collect.tabular.reader import TabularFile
from omnicanal.core.errors import InvalidError

COLUMNS = (
    Column("receipt_id", required=True, aliases=("ticket", "numero_ticket")),
    Column("datetime", ColumnType.DATETIME, required=True, aliases=("date", "date_heure")),
    Column("quantity", ColumnType.INT, required=True, aliases=("qte", "quantite")),
    Column("unit_price", ColumnType.CENTS, required=True, aliases=("prix_unitaire", "prix")),
    Column("first_name", aliases=("prenom",)),
    Column("optin", ColumnType.BOOL),
)


def read(path: Path, columns=COLUMNS, **options) -> tuple[TabularFile, list]:
    table = TabularFile(path, columns, **options)
    return table, list(table.rows())


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_french_csv_in_windows_1252_with_semicolons_and_decimal_commas(tmp_path) -> None:
    path = write(
        tmp_path,
        "caisse.csv",
        "Numéro ticket;Date heure;Qté;Prix unitaire;Prénom\r\n"
        "T1;23/11/2026 14:05;2;1 234,50;Hélène\r\n"
        "T2;23/11/2026;-1;3,2;Zoé\r\n",
        "cp1252",
    )
    table, rows = read(path)
    assert (table.format, table.encoding, table.delimiter) == ("csv", "cp1252", ";")
    assert rows == [
        (
            2,
            {
                "receipt_id": "T1",
                "datetime": datetime(2026, 11, 23, 14, 5, tzinfo=PARIS),
                "quantity": 2,
                "unit_price": 123450,
                "first_name": "Hélène",
            },
        ),
        (
            3,
            {
                "receipt_id": "T2",
                "datetime": datetime(2026, 11, 23, tzinfo=PARIS),
                "quantity": -1,
                "unit_price": 320,
                "first_name": "Zoé",
            },
        ),
    ]
    assert rows[0][1]["datetime"].utcoffset() == timedelta(hours=1)  # CET in November
    assert not table.errors


def test_utf8_with_bom_and_commas(tmp_path) -> None:
    path = write(
        tmp_path,
        "export.csv",
        '\ufeffticket,date,qte,prix,first_name\nA-1,2026-07-01T09:30:00,1,"12,50",Ève\n',
    )
    table, rows = read(path)
    assert (table.encoding, table.delimiter) == ("utf-8", ",")
    assert table.matched["receipt_id"] == "ticket"
    values = rows[0][1]
    assert values["unit_price"] == 1250
    assert values["first_name"] == "Ève"
    assert values["datetime"].utcoffset() == timedelta(hours=2)  # CEST in July


def test_utf16_tab_separated_as_excel_saves_unicode_text(tmp_path) -> None:
    path = write(
        tmp_path, "excel.txt", "ticket\tdate\tqte\tprix\nB1\t01/02/2026\t3\t9,99\n", "utf-16"
    )
    table, rows = read(path)
    assert (table.encoding, table.delimiter) == ("utf-16", "\t")
    assert rows[0][1]["unit_price"] == 999


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_detected(tmp_path, delimiter) -> None:
    header = delimiter.join(["ticket", "date", "qte", "prix"])
    path = write(tmp_path, "f.csv", f"{header}\nT{delimiter}2026-01-02{delimiter}1{delimiter}5\n")
    table, rows = read(path)
    assert table.delimiter == delimiter
    assert rows[0][1]["unit_price"] == 500


@pytest.mark.parametrize("name", ["Prénom", "first_name", "First Name", " FIRST-NAME ", "prenom"])
def test_header_names_match_without_case_accents_spaces_dashes(tmp_path, name) -> None:
    path = write(tmp_path, "f.csv", f"ticket;date;qte;prix;{name}\nT;2026-01-02;1;5;Anaïs\n")
    table, rows = read(path)
    assert table.matched["first_name"] == name.strip()
    assert rows[0][1]["first_name"] == "Anaïs"


def test_header_key_folds_names() -> None:
    assert header_key("Code_Postal") == header_key("code postal") == header_key("Code-Postal")
    assert header_key("\ufeffÉvénement") == "evenement"


def test_user_mapping_names_a_column_and_unknown_columns_are_ignored(tmp_path) -> None:
    path = write(tmp_path, "f.csv", "N° de caisse;Jour;Nb;PU;Vendeur\nT;2026-01-02;1;5;Marc\n")
    mapping = parse_mapping(
        ["N° de caisse=receipt_id", "jour=datetime", "NB=quantity", "pu=unit_price"]
    )
    table, rows = read(path, mapping=mapping)
    assert rows[0][1]["receipt_id"] == "T"
    assert table.ignored == ["Vendeur"]


def test_mapping_must_name_a_known_column(tmp_path) -> None:
    path = write(tmp_path, "f.csv", "ticket;date;qte;prix\nT;2026-01-02;1;5\n")
    with pytest.raises(TabularError) as caught:
        read(path, mapping={"prix": "price_ttc"})
    assert "price_ttc" in caught.value.detail
    assert "unit_price" in caught.value.detail  # the columns are listed
    with pytest.raises(InvalidError, match="file_column=canonical"):
        parse_mapping(["prix"])


def test_a_named_column_wins_over_an_alias_but_two_aliases_clash(tmp_path) -> None:
    path = write(tmp_path, "f.csv", "ticket;date;datetime;qte;prix\nT;x;2026-01-02;1;5\n")
    _, rows = read(path)
    assert rows[0][1]["datetime"].date() == date(2026, 1, 2)  # `date` (an alias) is not read
    clash = write(tmp_path, "g.csv", "ticket;date;date_heure;qte;prix\nT;x;y;1;5\n")
    with pytest.raises(TabularError, match="both give datetime"):
        read(clash)


def test_missing_required_columns_is_one_error_naming_them_and_the_columns_found(
    tmp_path,
) -> None:
    path = write(tmp_path, "ventes.csv", "ticket;libellé;montant\nT;Pain;1,20\n")
    with pytest.raises(TabularError) as caught:
        read(path)
    errors = caught.value.errors
    assert len(errors) == 1
    assert errors[0]["file"] == "ventes.csv"
    assert errors[0]["line"] == 1
    assert errors[0]["column"] == "datetime, quantity, unit_price"
    reason = errors[0]["reason"]
    assert "missing required column(s) datetime, quantity, unit_price" in reason
    assert "'ticket', 'libellé', 'montant'" in reason


def test_bad_cells_are_located_as_in_a_spreadsheet(tmp_path) -> None:
    path = write(
        tmp_path,
        "f.csv",
        "ticket;date;qte;prix;optin\n"
        "T1;2026-01-02;1;5;oui\n"
        ";;;;\n"  # a blank row still counts as a line
        'T2;"31/02/2026";1;5;non\n'
        'T3;2026-01-02;"1\n2";5;\n'  # a quoted newline: one spreadsheet row
        "T4;2026-01-02;1,5;douze;peut-être\n"
        "T5;;1;5;\n",
    )
    table, rows = read(path)
    assert [line for line, _ in rows] == [2]
    found = {(e.line, e.column) for e in table.errors.items}
    assert found == {
        (4, "datetime"),
        (5, "quantity"),
        (6, "quantity"),
        (6, "unit_price"),
        (6, "optin"),
        (7, "datetime"),
    }
    reasons = {(e.line, e.column): e.reason for e in table.errors.items}
    assert reasons[(4, "datetime")].startswith("'31/02/2026' is not a date")
    assert reasons[(6, "quantity")] == "'1,5' is not a whole number"
    assert reasons[(6, "unit_price")] == "'douze' is not a number"
    assert reasons[(7, "datetime")] == "is empty; it is required"
    assert table.data_rows == 5
    assert [e["line"] for e in table.errors.report()] == [4, 5, 6, 6, 6, 7]


def test_rows_with_the_wrong_number_of_fields_are_listed(tmp_path) -> None:
    path = write(tmp_path, "f.csv", "ticket;date;qte;prix\nT1;2026-01-02;1;5\nT2;2026-01-02;1\n")
    with pytest.raises(TabularError) as caught:
        read(path)
    assert caught.value.errors == [
        {"file": "f.csv", "line": 3, "column": None, "reason": "has 3 fields; the header has 4"}
    ]


def test_a_file_read_in_many_chunks_keeps_its_line_numbers(tmp_path) -> None:
    lines = [
        f"T{i};2026-01-02 10:{i % 60:02d};{i % 7 + 1};{i % 100},{i % 10}0" for i in range(60_000)
    ]
    lines[45_677] = "T45677;2026-01-02;beaucoup;1"
    path = write(tmp_path, "big.csv", "ticket;date;qte;prix\n" + "\n".join(lines) + "\n")
    assert path.stat().st_size > 1024 * 1024  # more than one reader block
    seen = []
    table = TabularFile(path, COLUMNS, progress=lambda rows, done, total: seen.append((rows, done)))
    rows = list(table.rows())
    assert len(rows) == 59_999
    assert rows[-1] == (
        60_001,
        {
            "receipt_id": "T59999",
            "datetime": datetime(2026, 1, 2, 10, 59, tzinfo=PARIS),
            "quantity": 59_999 % 7 + 1,
            "unit_price": 9990,
        },
    )
    assert [(e.line, e.column) for e in table.errors.items] == [(45_679, "quantity")]
    assert len(seen) > 1
    assert seen == sorted(seen)
    assert seen[-1] == (60_000, path.stat().st_size)


def test_xlsx_first_sheet_with_typed_cells(tmp_path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Ticket", "Date", "Qté", "Prix", "Optin"])
    sheet.append([1001, datetime(2026, 11, 23, 14, 5), 2, 12.5, True])
    sheet.append([None, None, None, None, None])
    sheet.append(["T3", "23/11/2026", 1.0, "3,20", "non"])
    sheet.append(["T4", "hier", 1, 1, None])
    book.create_sheet("Notes").append(["not read"])
    path = tmp_path / "ventes.xlsx"
    book.save(path)
    table, rows = read(path)
    assert table.format == "xlsx"
    assert rows == [
        (
            2,
            {
                "receipt_id": "1001",
                "datetime": datetime(2026, 11, 23, 14, 5, tzinfo=PARIS),
                "quantity": 2,
                "unit_price": 1250,
                "optin": True,
            },
        ),
        (
            4,
            {
                "receipt_id": "T3",
                "datetime": datetime(2026, 11, 23, tzinfo=PARIS),
                "quantity": 1,
                "unit_price": 320,
                "optin": False,
            },
        ),
    ]
    assert [(e.line, e.column) for e in table.errors.items] == [(5, "datetime")]


def test_parquet_with_native_types(tmp_path) -> None:
    frame = pa.table(
        {
            "ticket": pa.array(["P1", "P2"]),
            "date": pa.array(
                [datetime(2026, 3, 1, 8, 0), datetime(2026, 3, 1, 9, 0)], pa.timestamp("ns")
            ),
            "qte": pa.array([1, -2], pa.int64()),
            "prix": pa.array([Decimal("9.99"), Decimal("0.5")], pa.decimal128(10, 2)),
            "when_utc": pa.array(
                [datetime(2026, 3, 1, 8, 0, tzinfo=UTC)] * 2, pa.timestamp("us", "UTC")
            ),
        }
    )
    path = tmp_path / "ventes.parquet"
    pq.write_table(frame, path)
    columns = (*COLUMNS, Column("when_utc", ColumnType.DATETIME))
    table, rows = read(path, columns)
    assert table.format == "parquet"
    first = rows[0][1]
    assert first["datetime"] == datetime(2026, 3, 1, 8, 0, tzinfo=PARIS)
    assert (first["quantity"], first["unit_price"]) == (1, 999)
    assert first["when_utc"] == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert rows[1][1]["unit_price"] == 50


def test_broken_files_are_refused_with_a_reason(tmp_path) -> None:
    cases = {
        "empty.csv": (b"", "the file is empty"),
        "blank.csv": (b"\n\n  \n", "the file is empty"),
        "garbage.csv": (random.Random(3).randbytes(4096) + b"\x00", "not a text (CSV)"),
        "old.xls": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512, "XLS (Excel 97-2003)"),
        "fake.xlsx": (b"ticket;date\nT;2026-01-01\n", "is named .xlsx but is not one"),
        "broken.xlsx": (b"PK\x03\x04" + b"\x00" * 100, "not a readable XLSX file"),
        "broken.parquet": (b"PAR1" + b"\x00" * 100, "not a readable Parquet file"),
    }
    for name, (content, reason) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(TabularError) as caught:
            read(path)
        assert reason in caught.value.detail, name
        assert caught.value.errors[0]["file"] == name


def test_a_file_mixing_utf8_and_windows_1252_names_the_first_bad_line(tmp_path) -> None:
    text = "ticket;date;qte;prix;prenom\nT1;2026-01-02;1;5;Élise\n".encode()
    text += "T2;2026-01-02;1;5;Noël\n".encode("cp1252")
    path = tmp_path / "mixed.csv"
    path.write_bytes(text)
    with pytest.raises(TabularError) as caught:
        read(path)
    error = caught.value.errors[0]
    assert error["line"] == 3
    assert "mixes encodings" in error["reason"]


def test_header_only_file_has_no_rows(tmp_path) -> None:
    table, rows = read(write(tmp_path, "f.csv", "ticket;date;qte;prix\n"))
    assert rows == []
    assert table.data_rows == 0


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("12.50", 1250),
        ("12,50", 1250),
        ("1 234,50", 123450),
        ("1\u202f234,5", 123450),
        ("1.234,50", 123450),
        ("1,234.50", 123450),
        ("-3,2", -320),
        ("12", 1200),
        ("12,50 €", 1250),
        ("0,125", 13),
        (12.5, 1250),
        (7, 700),
        (Decimal("19.99"), 1999),
    ],
)
def test_amounts_become_integer_cents(text, cents) -> None:
    assert to_cents(text) == cents


@pytest.mark.parametrize("text", ["12,5x", "", "douze", "NaN", "1,2,3"])
def test_bad_amounts_are_refused(text) -> None:
    with pytest.raises(ValueError, match="is not a number"):
        to_cents(text)


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_cents_round_trip_through_french_and_iso_spellings(cents) -> None:
    sign = "-" if cents < 0 else ""
    whole, fraction = divmod(abs(cents), 100)
    french_whole = f"{whole:,}".replace(",", " ")
    assert to_cents(f"{sign}{french_whole},{fraction:02d}") == cents
    assert to_cents(f"{sign}{whole}.{fraction:02d}") == cents
    assert to_cents(f"{sign}{whole:,}.{fraction:02d}") == cents


def test_whole_numbers() -> None:
    assert [to_int("3"), to_int(" -2 "), to_int("1 000"), to_int("2,0"), to_int(4.0)] == [
        3,
        -2,
        1000,
        2,
        4,
    ]
    for bad in ("1,5", "x", True):
        with pytest.raises(ValueError, match="is not a whole number"):
            to_int(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23", datetime(2026, 11, 23, tzinfo=PARIS)),
        ("2026-11-23T14:05:00", datetime(2026, 11, 23, 14, 5, tzinfo=PARIS)),
        ("2026-11-23 14:05", datetime(2026, 11, 23, 14, 5, tzinfo=PARIS)),
        ("2026-11-23T14:05:00Z", datetime(2026, 11, 23, 14, 5, tzinfo=UTC)),
        (
            "2026-11-23T14:05:00+05:30",
            datetime(2026, 11, 23, 14, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ),
        ("23/11/2026", datetime(2026, 11, 23, tzinfo=PARIS)),
        ("23/11/2026 14:05", datetime(2026, 11, 23, 14, 5, tzinfo=PARIS)),
        ("23/11/2026 14:05:09", datetime(2026, 11, 23, 14, 5, 9, tzinfo=PARIS)),
        ("3/7/2026 9:05", datetime(2026, 7, 3, 9, 5, tzinfo=PARIS)),
        (date(2026, 7, 3), datetime(2026, 7, 3, tzinfo=PARIS)),
    ],
)
def test_dates_iso_and_french_naive_ones_in_paris(text, expected) -> None:
    parsed = to_datetime(text)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("text", ["11/23/2026", "2026-13-01", "demain", "31/04/2026 10:00"])
def test_bad_dates_name_the_accepted_forms(text) -> None:
    with pytest.raises(ValueError, match="is not a date \\(use 2026-11-23"):
        to_datetime(text)


def test_dates_and_booleans() -> None:
    assert to_date("23/11/2026 23:30") == date(2026, 11, 23)
    assert to_date("2026-11-23T23:30:00Z") == date(2026, 11, 24)  # already the 24th in Paris
    assert [to_bool(v) for v in ("oui", "Yes", "1", "true", "VRAI", 1)] == [True] * 6
    assert [to_bool(v) for v in ("non", "no", "0", "false", "Faux", 0)] == [False] * 6
    with pytest.raises(ValueError, match="is not yes/no"):
        to_bool("peut-être")
