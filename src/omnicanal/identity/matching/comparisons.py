"""How two records are compared, field by field, and how records are read in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
from splink import ColumnExpression
from splink import comparison_level_library as cll
from splink.comparison_library import CustomComparison

from omnicanal.core.errors import InvalidError
from omnicanal.identity.matching.settings import CLUSTER_COLUMN, RECORD_COLUMNS

# ---------------------------------------------------------------------------------
# Comparisons. Their labels are what a user reads in the evidence: keep them short.


def _levels(column: str, *middle: Any) -> list[Any]:
    return [
        cll.NullLevel(column),
        cll.ExactMatchLevel(column).configure(label_for_charts="exact"),
        *middle,
        cll.ElseLevel().configure(label_for_charts="different"),
    ]


def _jaro_winkler(column: str | ColumnExpression, threshold: float) -> Any:
    label = f"Jaro-Winkler >={threshold}"
    return cll.JaroWinklerLevel(column, threshold).configure(label_for_charts=label)


def _levenshtein(column: str | ColumnExpression, distance: int, label: str = "") -> Any:
    label = label or f"Levenshtein <={distance}"
    return cll.LevenshteinLevel(column, distance).configure(label_for_charts=label)


def _name(column: str, other: str) -> list[Any]:
    swapped = cll.ColumnsReversedLevel(column, other).configure(
        label_for_charts=f"swapped with {other}"
    )
    return _levels(
        column, _jaro_winkler(column, 0.92), _jaro_winkler(column, 0.88), swapped,
        _jaro_winkler(column, 0.7),
    )  # fmt: skip


# An address mistyped keeps its other half: the same name at a misspelt provider
# (`gmial.com`, `gmail.fr`), or a slip in the name at the same provider. Namesakes'
# addresses are alike too (`jean.dupont@free.fr`, `jean.dupont@orange.fr`,
# `jeandupont84@gmail.com`, `jeandupont85@gmail.com`), so another provider or other
# digits is not a slip. Written in DuckDB's SQL; Splink translates it for other engines.
# Most candidate pairs reach these levels (two people, two addresses): string
# functions and the cheap tests first keep them fast (regular expressions for the
# parts took a fifth of all scoring at a million people).
_LOCAL = "split_part(email_{0}, '@', 1)"
_PROVIDER = "split_part(split_part(email_{0}, '@', 2), '.', 1)"
_DOMAIN = "substr(email_{0}, strpos(email_{0}, '@'))"
_DIGITS = "regexp_replace(split_part(email_{0}, '@', 1), '[^0-9]', '', 'g')"
_DOMAIN_MISSPELT = (
    f"{_LOCAL.format('l')} = {_LOCAL.format('r')} and "
    f"levenshtein({_PROVIDER.format('l')}, {_PROVIDER.format('r')}) <= 2"
)
_LOCAL_MISSPELT = (
    f"{_DOMAIN.format('l')} = {_DOMAIN.format('r')} and "
    f"levenshtein({_LOCAL.format('l')}, {_LOCAL.format('r')}) <= 2 and "
    f"{_DIGITS.format('l')} = {_DIGITS.format('r')}"
)


def _within(column: str, distance: int, label: str = "") -> Any:
    """Levenshtein at most `distance`, after the cheap test that lengths allow it.

    Two lengths further apart than the distance cannot be within it; most pairs of
    different streets fail that test, and the distance itself is the costliest
    comparison there is (half of all scoring, measured at a million people).
    """
    label = label or f"Levenshtein <={distance}"
    sql = (
        f"abs(length({column}_l) - length({column}_r)) <= {distance} and "
        f"levenshtein({column}_l, {column}_r) <= {distance}"
    )
    return cll.CustomLevel(sql, label)


def comparisons(present: Iterable[str], tf_columns: Iterable[str]) -> list[CustomComparison]:
    """Return the comparison of each column present, its levels most specific first."""
    same = "substr({0}_l, 1, {1}) = substr({0}_r, 1, {1})"
    levels = {
        "first_name": _name("first_name", "last_name"),
        "last_name": _name("last_name", "first_name"),
        "birth_date": _levels(
            "birth_date", _levenshtein("birth_date", 1, "one character"),
            cll.CustomLevel(same.format("birth_date", 4), "same year"),
        ),
        "email": _levels(
            "email", cll.CustomLevel(_DOMAIN_MISSPELT, "provider misspelt", "duckdb"),
            cll.CustomLevel(_LOCAL_MISSPELT, "name part misspelt", "duckdb"),
        ),
        "phone": _levels("phone"),
        "postcode": _levels(
            "postcode", _levenshtein("postcode", 1, "one character"),
            cll.CustomLevel(same.format("postcode", 2), "same department"),
        ),
        "city": _levels("city", _jaro_winkler("city", 0.88)),
        "street": _levels("street", _within("street", 2), _within("street", 5)),
        "store": _levels("store"),
    }  # fmt: skip
    for column in tf_columns:
        levels[column][1].configure(tf_adjustment_column=column)
    return [CustomComparison(levels[c], output_column_name=c) for c in present]


def prepare(records: pd.DataFrame, *, name: str) -> pd.DataFrame:
    """Return the records' columns as strings (blank is missing), or raise InvalidError."""
    if "record_id" not in records.columns:
        raise InvalidError(
            f"The {name} have no record_id column.",
            errors=[{"field": "record_id", "reason": "missing column"}],
        )
    ids = records["record_id"].astype("string")
    if ids.isna().any():
        raise InvalidError(
            f"{int(ids.isna().sum())} of the {name} have no record_id.",
            errors=[{"field": "record_id", "reason": "empty value"}],
        )
    repeated = list(ids[ids.duplicated()].unique()[:5])
    if repeated:
        raise InvalidError(
            f"The {name} repeat record_id {', '.join(repeated)}: each must be unique.",
            errors=[{"field": "record_id", "reason": "not unique", "values": repeated}],
        )
    columns = {}
    if CLUSTER_COLUMN in records.columns:
        columns[CLUSTER_COLUMN] = records[CLUSTER_COLUMN].astype("string")
    for column in RECORD_COLUMNS:
        if column in records.columns:
            values = records[column].astype("string").str.strip()
            columns[column] = values.mask(values == "")
        else:
            columns[column] = pd.Series(pd.NA, index=records.index, dtype="string")
    return pd.DataFrame(columns).reset_index(drop=True)


# Fields where one value held by a crowd is a placeholder, not a shared trait.
PLACEHOLDER_COLUMNS = ("birth_date", "email", "phone", "street")


def without_placeholders(
    tables: dict[str, pd.DataFrame], share: float, minimum: int
) -> dict[str, pd.DataFrame]:
    """Return the tables with placeholder values read as missing.

    A value of PLACEHOLDER_COLUMNS held by more than `share` of all the records, and
    by more than `minimum` of them, is one a form or a till filled in for whoever
    left it blank (1900-01-01, the shop's own e-mail): it says nothing about who the
    record is, and blocking on it would pair its holders all together.
    """
    rows = sum(len(t) for t in tables.values())
    limit = max(minimum, share * rows)
    cleaned = dict(tables)
    for column in PLACEHOLDER_COLUMNS:
        counts = pd.concat([t[column] for t in tables.values()]).value_counts()
        common = counts.index[counts > limit]
        if len(common):
            for name, table in cleaned.items():
                cleaned[name] = table.assign(
                    **{column: table[column].mask(table[column].isin(common))}
                )
    return cleaned
