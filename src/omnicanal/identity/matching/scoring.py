"""Scoring candidate pairs: within one table, or new records against existing ones."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from splink import DuckDBAPI, Linker

from omnicanal.identity.matching.comparisons import prepare, without_placeholders
from omnicanal.identity.matching.settings import (
    CLUSTER_COLUMN,
    PAIR_COLUMNS,
    MatchModel,
    MatchSettings,
)
from omnicanal.identity.matching.training import (
    MAX_BITS,
    count_pairs,
    engine,
    estimated_pairs,
    estimated_prior,
    log2_odds,
    make_linker,
    total_pairs,
    train_linker,
)


def _evidence_sql(splink_settings: dict[str, Any]) -> str:
    """Return SQL building, from the gamma columns, the JSON of each field's level."""
    parts = []
    for comparison in splink_settings["comparisons"]:
        column = comparison["output_column_name"]
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        # Splink numbers the non-null levels from the last (0) up to the first.
        cases = " ".join(
            f"when {len(levels) - 1 - i} then "
            + _sql_string(f"{json.dumps(column)}: {json.dumps(level['label_for_charts'])}")
            for i, level in enumerate(levels)
        )
        parts.append(f'case "gamma_{column}" {cases} end')  # null: missing, left out
    return "'{' || concat_ws(', ', " + ", ".join(parts) + ") || '}'"


def _no_pairs() -> pd.DataFrame:
    types = ("string", "string", "float64", "float64", "string")
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(PAIR_COLUMNS, types, strict=True)})


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# How far the estimated prior may rise above the starting one (see `_pairs`).
PRIOR_HEADROOM_BITS = 20.0


def _pairs(
    db: DuckDBAPI, linker: Linker, settings: MatchSettings, total: float, new: str = ""
) -> pd.DataFrame:
    """Predict; return the pairs at or above min_probability in PAIR_COLUMNS."""
    trained = linker.misc.save_model_to_json()
    prior = float(trained["probability_two_random_records_match"])
    # The pairs far below min_probability are left in DuckDB's pipeline, never stored:
    # at a million people they are hundreds of millions. Those kept reach at least
    # PRIOR_HEADROOM_BITS below it, so that a prior re-estimated up to 2^headroom times
    # higher still finds every pair it lifts above min_probability; in the estimate,
    # each pair left out counts as no match, when it was at most a 2^-headroom chance.
    floor = None  # min_probability 0: every pair is wanted
    if settings.min_probability > 0:
        floor = log2_odds(settings.min_probability)
        if settings.estimate_prior:
            floor -= PRIOR_HEADROOM_BITS
    predictions = linker.inference.predict(threshold_match_weight=floor, warning_mode="never")
    shift = 0.0
    if settings.estimate_prior:
        weights = db.duckdb_con.sql(
            f"select match_weight from {predictions.physical_name}"
        ).fetchnumpy()["match_weight"]
        shift = log2_odds(estimated_prior(np.asarray(weights), prior, total)) - log2_odds(prior)
    ids = "record_id_l as left_id, record_id_r as right_id"
    if new:  # the new record on the left, whichever side Splink put it
        left = f"source_dataset_l = '{new}'"
        ids = (
            f"case when {left} then record_id_l else record_id_r end as left_id, "
            f"case when {left} then record_id_r else record_id_l end as right_id"
        )
    evidence = _evidence_sql(trained)
    weight = f"(match_weight + {shift!r})"
    bits = f"least(greatest({weight}, -{MAX_BITS}), {MAX_BITS})"
    sql = (
        f"select * from (select {ids}, 1 / (1 + pow(2, -{bits})) as match_probability, "
        f"{weight} as match_weight, {evidence} as evidence from {predictions.physical_name}) "
        f"where match_probability >= {settings.min_probability!r} "
        "order by match_probability desc, left_id, right_id"
    )
    pairs: pd.DataFrame = db.duckdb_con.sql(sql).df()
    return pairs


def train(records: pd.DataFrame, settings: MatchSettings | None = None) -> MatchModel:
    """Train a model on one table of records, without labels (u sampled, m by EM)."""
    settings = settings or MatchSettings()
    table = _cleaned({"records": prepare(records, name="records")}, settings)["records"]
    with engine(settings) as db:
        return train_linker(make_linker(db, {"records": table}, settings, None), settings, table)


def _ignore(_count: int) -> None:
    """An estimate nobody asked to hear: the budget is still checked."""


def _cleaned(tables: dict[str, pd.DataFrame], settings: MatchSettings) -> dict[str, pd.DataFrame]:
    return without_placeholders(tables, settings.placeholder_share, settings.placeholder_min)


def score_pairs(
    records: pd.DataFrame,
    settings: MatchSettings | None = None,
    *,
    model: MatchModel | None = None,
    on_estimate: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Score candidate duplicate pairs within one table of records.

    Trains a model on the records unless one is given. Returns the pairs scored at or
    above `settings.min_probability`, in PAIR_COLUMNS, most probable first. Before
    scoring, `on_estimate` is told about how many candidate pairs there are; above
    `settings.max_candidate_pairs`, InvalidError is raised instead.
    """
    settings = settings or MatchSettings()
    table = _cleaned({"records": prepare(records, name="records")}, settings)["records"]
    if len(table) < 2:
        return _no_pairs()
    with engine(settings) as db:
        linker = make_linker(db, {"records": table}, settings, model, budget=on_estimate or _ignore)
        if model is None:
            train_linker(linker, settings, table)
        return _pairs(db, linker, settings, total_pairs({"records": table}))


def link_pairs(
    new: pd.DataFrame,
    existing: pd.DataFrame,
    settings: MatchSettings | None = None,
    *,
    model: MatchModel | None = None,
) -> pd.DataFrame:
    """Score new records against existing ones (profiles); `left_id` is the new record.

    Without a model, one is trained on both tables as one population, so that a small
    batch of new records still gets sound m and u values. Pairs within `new` are not
    scored: run `score_pairs` on the batch for those.
    """
    settings = settings or MatchSettings()
    cleaned = _cleaned(
        {
            "new": prepare(new, name="new records"),
            "existing": prepare(existing, name="existing records"),
        },
        settings,
    )
    new_table, existing_table = cleaned["new"], cleaned["existing"]
    if new_table.empty or existing_table.empty:
        return _no_pairs()
    if model is None:
        renamed = new_table.assign(record_id="new:" + new_table["record_id"])
        if CLUSTER_COLUMN in renamed.columns:  # the two tables name their clusters apart
            renamed[CLUSTER_COLUMN] = "new:" + renamed[CLUSTER_COLUMN]
        both = pd.concat([existing_table, renamed], ignore_index=True)
        with engine(settings) as db:
            model = train_linker(make_linker(db, {"records": both}, settings, None), settings, both)
    with engine(settings) as db:
        tables = {
            "existing": existing_table.drop(columns=CLUSTER_COLUMN, errors="ignore"),
            "new": new_table.drop(columns=CLUSTER_COLUMN, errors="ignore"),
        }
        linker = make_linker(db, tables, settings, model, budget=_ignore)
        return _pairs(db, linker, settings, total_pairs(tables), new="new")


def estimate_candidate_pairs(
    records: pd.DataFrame, settings: MatchSettings | None = None
) -> list[tuple[str, int]]:
    """Return each blocking rule with about how many pairs it adds to the rules before it.

    Counted on a sample of the records and scaled up, so it takes a second at a
    million records; `score_pairs` refuses to start above `max_candidate_pairs`.
    """
    settings = settings or MatchSettings()
    table = _cleaned({"records": prepare(records, name="records")}, settings)["records"]
    with engine(settings) as db:
        frame = db.register(table, table_name="records")
        return estimated_pairs([frame], len(table), settings, "dedupe_only")


def count_candidate_pairs(
    records: pd.DataFrame,
    settings: MatchSettings | None = None,
    *,
    existing: pd.DataFrame | None = None,
) -> int:
    """Return how many pairs the blocking rules give Splink to score, each pair once.

    With `existing`, count only the pairs between `records` and `existing`.
    """
    settings = settings or MatchSettings()
    tables = {"records": prepare(records, name="records")}
    if existing is not None:
        tables["existing"] = prepare(existing, name="existing records")
    tables = _cleaned(tables, settings)
    with engine(settings) as db:
        names = [db.register(t, table_name=n).physical_name for n, t in tables.items()]
        return count_pairs(db, names, settings.blocking_rules)
