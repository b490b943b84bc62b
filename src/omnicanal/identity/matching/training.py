"""Splink on a private DuckDB: the linker, its training, and the prior estimated on the pairs."""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
from splink import DuckDBAPI, Linker, SettingsCreator
from splink.blocking_analysis import count_comparisons_from_blocking_rules
from splink.internals.exceptions import EMTrainingException, SplinkException
from splink.internals.splink_dataframe import SplinkDataFrame

from omnicanal.core.errors import InvalidError
from omnicanal.identity.matching.comparisons import comparisons
from omnicanal.identity.matching.settings import (
    CLUSTER_COLUMN,
    RECORD_COLUMNS,
    MatchModel,
    MatchSettings,
)

LinkType = Literal["dedupe_only", "link_only"]


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


# Records sampled on each side to estimate how many pairs the blocking rules give.
_BUDGET_SAMPLE = 50_000


def estimated_pairs(
    frames: list[SplinkDataFrame], rows: int, settings: MatchSettings, link_type: LinkType
) -> list[tuple[str, int]]:
    """Return each blocking rule with about how many pairs it adds to the rules before it.

    Counted on a sample of the records, scaled up: a second at a million records,
    where the pairs themselves would take an hour.
    """
    proportion = min(1.0, _BUDGET_SAMPLE / max(rows, 1))
    with warnings.catch_warnings():  # Splink warns that small samples are rough: they are
        warnings.simplefilter("ignore", UserWarning)
        counted = count_comparisons_from_blocking_rules(
            frames if len(frames) > 1 else frames[0],
            blocking_rules=list(settings.blocking_rules),
            link_type=link_type,
            unique_id_column_name="record_id",
            record_sample_proportion=proportion,
        )
    return [(c["blocking_rule"], int(c["marginal_comparison_count"])) for c in counted]


def check_budget(
    frames: list[SplinkDataFrame], rows: int, settings: MatchSettings, link_type: LinkType
) -> int:
    """Return about how many pairs will be scored; refuse more than the settings allow."""
    counts = estimated_pairs(frames, rows, settings, link_type)
    total = sum(n for _rule, n in counts)
    if total > settings.max_candidate_pairs:
        errors = [{"field": "blocking_rules", "rule": r, "pairs": n} for r, n in counts]
        largest = max(counts, key=lambda c: c[1])
        raise InvalidError(
            f"The blocking rules give about {total:,} pairs to score, more than "
            f"max_candidate_pairs ({settings.max_candidate_pairs:,.0f}). The largest rule, "
            f"{largest[0]!r}, gives {largest[1]:,}: make it stricter.",
            errors=errors,
        )
    return total


def make_linker(
    db: DuckDBAPI,
    tables: dict[str, pd.DataFrame],
    settings: MatchSettings,
    model: MatchModel | None,
    *,
    budget: Callable[[int], None] | None = None,
) -> Linker:
    """Register the tables; return a linker with the model, or an untrained one.

    With `budget`, first refuse rules that would give too many pairs (`check_budget`),
    then tell `budget` about how many they give.
    """
    frames = [db.register(table, table_name=name) for name, table in tables.items()]
    link_type: LinkType = "link_only" if len(tables) == 2 else "dedupe_only"
    if budget is not None:
        budget(check_budget(frames, sum(len(t) for t in tables.values()), settings, link_type))
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
