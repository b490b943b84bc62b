"""Splink on a private DuckDB: the linker, its training, and the prior estimated on the pairs."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
from splink import DuckDBAPI, Linker, SettingsCreator
from splink.internals.exceptions import EMTrainingException, SplinkException

from omnicanal.core.errors import InvalidError
from omnicanal.identity.matching.comparisons import comparisons
from omnicanal.identity.matching.settings import (
    CLUSTER_COLUMN,
    RECORD_COLUMNS,
    MatchModel,
    MatchSettings,
)


@contextmanager
def engine(settings: MatchSettings) -> Iterator[DuckDBAPI]:
    """Yield Splink's DuckDB backend on a private in-memory database.

    Splink's log notes are meant for a notebook: they are held back here. Its errors
    (a rule that does not parse, training that finds no pairs) become InvalidError.
    """
    splink_logger = logging.getLogger("splink")
    level = splink_logger.level
    splink_logger.setLevel(logging.ERROR)
    con = duckdb.connect(":memory:", config={"threads": str(settings.threads)})
    con.execute("set enable_progress_bar = false")
    try:
        yield DuckDBAPI(connection=con)
    except (SplinkException, duckdb.Error) as exc:
        reason = str(exc).strip().splitlines()[0]
        if isinstance(exc, EMTrainingException):
            reason += " Train on more records (thousands) or pass a model trained on more."
        raise InvalidError(
            f"Matching failed: {reason}",
            errors=[{"field": "records or settings", "reason": reason}],
        ) from exc
    finally:
        con.close()
        splink_logger.setLevel(level)


def count_pairs(db: DuckDBAPI, tables: list[str], rules: Iterable[str]) -> int:
    """Return how many distinct pairs meet at least one of the rules."""
    order = "and l.record_id < r.record_id" if len(tables) == 1 else ""
    unions = " union ".join(
        f"select l.record_id as a, r.record_id as b from {tables[0]} as l "
        f"join {tables[-1]} as r on ({rule}) {order}"
        for rule in rules
    )
    ((found,),) = db.duckdb_con.sql(f"select count(*) from ({unions})").fetchall()
    return int(found)


def make_linker(
    db: DuckDBAPI,
    tables: dict[str, pd.DataFrame],
    settings: MatchSettings,
    model: MatchModel | None,
) -> Linker:
    """Register the tables; return a linker with the model, or an untrained one."""
    frames = [db.register(table, table_name=name) for name, table in tables.items()]
    link_type: Literal["dedupe_only", "link_only"] = (
        "link_only" if len(tables) == 2 else "dedupe_only"
    )
    total = total_pairs(tables)
    found = count_pairs(db, [f.physical_name for f in frames], settings.deterministic_rules)
    prior = min(max(found / settings.deterministic_recall, 1.0) / max(total, 1.0), 0.5)
    if model is None:
        present = [
            c for c in RECORD_COLUMNS[1:] if any(t[c].notna().any() for t in tables.values())
        ]
        creator: SettingsCreator | dict[str, Any] = SettingsCreator(
            link_type=link_type,
            unique_id_column_name="record_id",
            probability_two_random_records_match=prior,
            comparisons=list(comparisons(present, settings.term_frequencies)),
            blocking_rules_to_generate_predictions=list[Any](settings.blocking_rules),
            retain_matching_columns=True,  # with them come the gamma columns: the evidence
        )
    else:
        creator = trained = json.loads(model.splink_json)
        trained.update(
            link_type=link_type,
            probability_two_random_records_match=prior,
            blocking_rules_to_generate_predictions=list(settings.blocking_rules),
            retain_matching_columns=True,
            linker_uid=None,
        )
    return Linker(frames if len(frames) > 1 else frames[0], creator, log_level=None)


def total_pairs(tables: dict[str, pd.DataFrame]) -> float:
    """Return how many pairs the tables make: within one, or across two."""
    sizes = [len(t) for t in tables.values()]
    return sizes[0] * sizes[1] if len(sizes) == 2 else sizes[0] * (sizes[0] - 1) / 2


def _known_pairs(table: pd.DataFrame) -> int:
    """Return how many pairs of records the cluster column says are one person."""
    if CLUSTER_COLUMN not in table.columns:
        return 0
    sizes = table[CLUSTER_COLUMN].value_counts()
    return int((sizes * (sizes - 1) // 2).sum())


def train_linker(linker: Linker, settings: MatchSettings, table: pd.DataFrame) -> MatchModel:
    """Estimate u on random pairs, then m from the known clusters, or by EM without them.

    A level no known pair reaches keeps Splink's starting m for it.
    """
    linker.training.estimate_u_using_random_sampling(
        max_pairs=settings.max_pairs, seed=settings.seed
    )
    if _known_pairs(table) >= settings.min_known_pairs:
        linker.training.estimate_m_from_label_column(CLUSTER_COLUMN)
    else:
        _expectation_maximisation(linker, settings, len(table))
    trained = linker.misc.save_model_to_json()
    trained.pop("linker_uid", None)  # random per linker; the model is the same
    return MatchModel(json.dumps(trained))


def _expectation_maximisation(linker: Linker, settings: MatchSettings, rows: int) -> None:
    """Estimate m by EM on each training block."""
    # Splink sizes its EM sample from a probe of the records: about 10,000 of them.
    probe = min(1.0, 10_000 / max(rows, 1))
    for rule in settings.training_blocks:
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule,
                estimate_without_term_frequencies=True,
                max_pairs=settings.em_max_pairs,
                record_sample_proportion=probe,
            )
        except ValueError as exc:  # an m value underflowed: EM found no stable answer
            raise EMTrainingException(f"Training on {rule!r} did not converge.") from exc


def log2_odds(probability: float) -> float:
    return math.log2(probability / (1 - probability))


# Match weights are kept within this many bits when turned back into odds (2^±200 is
# far beyond any decision and still a finite float).
MAX_BITS = 200.0


def estimated_prior(weights: np.ndarray, prior: float, total: float) -> float:
    """Return the prior that agrees with the scored pairs, by expectation maximisation.

    Each pair's match weight is its prior log-odds plus the evidence of its fields; with
    m and u fixed, the prior is the one unknown of a two-class mixture, and EM's update
    is the expected number of matches among the scored pairs over all pairs (pairs no
    blocking rule finds count as non-matches, so the estimate errs low). Near-certain
    rules divided by a guessed recall only start it: on a store, the deterministic
    rules already joined most pairs they would find, and the rest would say that
    almost nothing is left to match.
    """
    if not len(weights) or total <= 0:
        return prior
    bits = np.clip(weights - log2_odds(prior), -MAX_BITS, MAX_BITS)
    evidence = np.exp2(bits)
    estimate = prior
    for _ in range(200):
        odds = estimate / (1 - estimate)
        matches = float(np.sum(odds * evidence / (odds * evidence + 1)))
        updated = min(max(matches / total, 1 / total), 0.5)
        if abs(updated - estimate) <= 1e-9 * estimate:
            return updated
        estimate = updated
    return estimate
