"""Probabilistic matching of person records that share no reliable key.

Till receipts with a name and a postcode, event sign-up sheets and call-centre
contacts typed by hand carry no user id, and often no email. Splink (a
Fellegi-Sunter model, run here on DuckDB) compares candidate pairs field by field
and turns the agreement pattern into a match probability: pairs at or above
`merge_threshold` merge, pairs in the band down to `review_threshold` go before a
person, the rest stay apart. Each pair carries its `evidence`, the comparison level
reached on every field, so that a merge can be explained.

DataFrame in, DataFrame out, on our normalised record columns (`RECORD_COLUMNS`);
reading and writing profiles is the identity service's business.

    model = train(records)                      # u by random sampling, m from known
                                                # clusters (a `cluster` column) or by EM
    pairs = score_pairs(records, model=model)   # left_id, right_id, probability, evidence
    merges, reviews = decide(pairs)
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
from splink import ColumnExpression, DuckDBAPI, Linker, SettingsCreator
from splink import comparison_level_library as cll
from splink.clustering import cluster_pairwise_predictions_at_threshold
from splink.comparison_library import CustomComparison
from splink.internals.exceptions import EMTrainingException, SplinkException

from omnicanal.core.errors import InvalidError

RECORD_COLUMNS = (
    "record_id", "first_name", "last_name", "birth_date", "email", "phone",
    "postcode", "city", "street", "store",
)  # fmt: skip
PAIR_COLUMNS = ("left_id", "right_id", "match_probability", "match_weight", "evidence")
# Optional: records sharing a cluster are already known to be one person (the
# deterministic rules joined them on a card, an e-mail, a phone...). How their names,
# postcodes and stores differ is how a true match looks: m is learned from them.
CLUSTER_COLUMN = "cluster"

# A pair is scored when it meets any rule. Each rule is an equi-join, which DuckDB
# hashes; between them they survive a typo or a gap in any one field.
DEFAULT_BLOCKING = (
    "l.postcode = r.postcode and substr(l.last_name, 1, 1) = substr(r.last_name, 1, 1)"
    " and substr(l.first_name, 1, 1) = substr(r.first_name, 1, 1)",
    "l.email = r.email",
    "l.phone = r.phone",
    "l.birth_date = r.birth_date and substr(l.first_name, 1, 1) = substr(r.first_name, 1, 1)",
    "l.birth_date = r.birth_date and substr(l.postcode, 1, 2) = substr(r.postcode, 1, 2)",
    "l.first_name = r.first_name and l.last_name = r.last_name"
    " and substr(l.postcode, 1, 2) = substr(r.postcode, 1, 2)",
    "l.first_name = r.last_name and l.last_name = r.first_name",
    "l.street = r.street and substr(l.postcode, 1, 2) = substr(r.postcode, 1, 2)",
    "l.last_name = r.last_name and l.city = r.city",
)
# EM learns m for the fields a rule leaves free, so two rules with different fields
# between them estimate every comparison (Splink's recommended pattern).
DEFAULT_TRAINING_BLOCKS = (
    "l.first_name = r.first_name and l.last_name = r.last_name",
    "l.birth_date = r.birth_date and substr(l.postcode, 1, 2) = substr(r.postcode, 1, 2)",
)
# Rules that almost never pair two different people: the share of pairs they find,
# divided by their recall, is the prior probability that two records match.
DEFAULT_DETERMINISTIC = (
    "l.first_name = r.first_name and l.last_name = r.last_name and l.birth_date = r.birth_date",
    "l.email = r.email and l.first_name = r.first_name",
    "l.phone = r.phone and l.first_name = r.first_name",
)


@dataclass(frozen=True)
class MatchSettings:
    """How pairs are found, how the model is trained and where the decisions fall.

    The thresholds are match probabilities; 0.95 and 0.5 gave precision 1.0 on FEBRL
    1-4 with recall 0.96-1.0 (docs/concepts/identity-matching.md).
    """

    merge_threshold: float = 0.95
    review_threshold: float = 0.5
    min_probability: float = 0.01  # pairs scored below are not returned
    blocking_rules: tuple[str, ...] = DEFAULT_BLOCKING
    training_blocks: tuple[str, ...] = DEFAULT_TRAINING_BLOCKS
    deterministic_rules: tuple[str, ...] = DEFAULT_DETERMINISTIC
    deterministic_recall: float = 0.6
    # The prior above is a starting point; with `estimate_prior`, it is re-estimated on
    # the scored pairs (see `_estimated_prior`), which a store needs: its deterministic
    # rules already joined most pairs those rules would find.
    estimate_prior: bool = True
    max_pairs: float = 5e6  # random pairs sampled to estimate u
    em_max_pairs: float | None = 2e6  # blocked pairs sampled for each EM session
    term_frequencies: tuple[str, ...] = ("last_name",)
    min_known_pairs: int = 30  # pairs within clusters needed to learn m from them
    # Fields that must agree: a pair whose evidence shows one of them different is
    # left apart whatever its probability, unless a field of `unless_same` is the same
    # on both sides. A household shares an address, an e-mail and a last name, not a
    # first name nor a birth date; a badly typed name with the same birth date is
    # still one person.
    must_agree: tuple[str, ...] = ()
    unless_same: tuple[str, ...] = ("birth_date",)
    seed: int = 42
    threads: int = 2

    def __post_init__(self) -> None:
        checks = {
            "review_threshold": 0 < self.review_threshold <= self.merge_threshold,
            "merge_threshold": self.merge_threshold <= 1,
            "min_probability": 0 <= self.min_probability <= self.review_threshold,
            "deterministic_recall": 0 < self.deterministic_recall <= 1,
            "blocking_rules": bool(self.blocking_rules),
            "training_blocks": bool(self.training_blocks),
            "threads": self.threads >= 1,
        }
        errors = [{"field": f, "value": getattr(self, f)} for f, ok in checks.items() if not ok]
        if errors:
            raise InvalidError(
                "Match settings need 0 <= min_probability <= review_threshold <= "
                "merge_threshold <= 1, review_threshold > 0, a recall in (0, 1], "
                "at least one blocking and one training rule, and threads >= 1.",
                errors=errors,
            )


@dataclass(frozen=True)
class MatchModel:
    """A trained model, Splink's settings with their m and u values as JSON, to store and reuse."""

    splink_json: str

    @property
    def fields(self) -> tuple[str, ...]:
        """Return the record columns the model compares."""
        comparisons = json.loads(self.splink_json)["comparisons"]
        return tuple(c["output_column_name"] for c in comparisons)


@dataclass(frozen=True)
class Scores:
    """Pairwise quality against a ground truth."""

    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int


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
_LOCAL = "regexp_extract(email_{0}, '^[^@]+')"
_DOMAIN_MISSPELT = (
    f"{_LOCAL.format('l')} = {_LOCAL.format('r')} and levenshtein("
    "regexp_extract(email_l, '@([^.]+)', 1), regexp_extract(email_r, '@([^.]+)', 1)) <= 2"
)
_LOCAL_MISSPELT = (
    "regexp_extract(email_l, '@.*$') = regexp_extract(email_r, '@.*$') and "
    f"levenshtein({_LOCAL.format('l')}, {_LOCAL.format('r')}) <= 2 and "
    f"regexp_replace({_LOCAL.format('l')}, '[^0-9]', '', 'g') = "
    f"regexp_replace({_LOCAL.format('r')}, '[^0-9]', '', 'g')"
)


def _comparisons(present: Iterable[str], tf_columns: Iterable[str]) -> list[CustomComparison]:
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
        "street": _levels("street", _levenshtein("street", 2), _levenshtein("street", 5)),
        "store": _levels("store"),
    }  # fmt: skip
    for column in tf_columns:
        levels[column][1].configure(tf_adjustment_column=column)
    return [CustomComparison(levels[c], output_column_name=c) for c in present]


# ---------------------------------------------------------------------------------
# Input and engine.


def _prepare(records: pd.DataFrame, *, name: str) -> pd.DataFrame:
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


@contextmanager
def _engine(settings: MatchSettings) -> Iterator[DuckDBAPI]:
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


def _count_pairs(db: DuckDBAPI, tables: list[str], rules: Iterable[str]) -> int:
    """Return how many distinct pairs meet at least one of the rules."""
    order = "and l.record_id < r.record_id" if len(tables) == 1 else ""
    unions = " union ".join(
        f"select l.record_id as a, r.record_id as b from {tables[0]} as l "
        f"join {tables[-1]} as r on ({rule}) {order}"
        for rule in rules
    )
    ((found,),) = db.duckdb_con.sql(f"select count(*) from ({unions})").fetchall()
    return int(found)


def _linker(
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
    total = _total_pairs(tables)
    found = _count_pairs(db, [f.physical_name for f in frames], settings.deterministic_rules)
    prior = min(max(found / settings.deterministic_recall, 1.0) / max(total, 1.0), 0.5)
    if model is None:
        present = [
            c for c in RECORD_COLUMNS[1:] if any(t[c].notna().any() for t in tables.values())
        ]
        creator: SettingsCreator | dict[str, Any] = SettingsCreator(
            link_type=link_type,
            unique_id_column_name="record_id",
            probability_two_random_records_match=prior,
            comparisons=list(_comparisons(present, settings.term_frequencies)),
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


def _total_pairs(tables: dict[str, pd.DataFrame]) -> float:
    """Return how many pairs the tables make: within one, or across two."""
    sizes = [len(t) for t in tables.values()]
    return sizes[0] * sizes[1] if len(sizes) == 2 else sizes[0] * (sizes[0] - 1) / 2


def _known_pairs(table: pd.DataFrame) -> int:
    """Return how many pairs of records the cluster column says are one person."""
    if CLUSTER_COLUMN not in table.columns:
        return 0
    sizes = table[CLUSTER_COLUMN].value_counts()
    return int((sizes * (sizes - 1) // 2).sum())


def _train(linker: Linker, settings: MatchSettings, table: pd.DataFrame) -> MatchModel:
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


def _log2_odds(probability: float) -> float:
    return math.log2(probability / (1 - probability))


# Match weights are kept within this many bits when turned back into odds (2^±200 is
# far beyond any decision and still a finite float).
_MAX_BITS = 200.0


def _estimated_prior(weights: np.ndarray, prior: float, total: float) -> float:
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
    bits = np.clip(weights - _log2_odds(prior), -_MAX_BITS, _MAX_BITS)
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


def _pairs(
    db: DuckDBAPI, linker: Linker, settings: MatchSettings, total: float, new: str = ""
) -> pd.DataFrame:
    """Predict; return the pairs at or above min_probability in PAIR_COLUMNS."""
    trained = linker.misc.save_model_to_json()
    prior = float(trained["probability_two_random_records_match"])
    predictions = linker.inference.predict(
        threshold_match_probability=None if settings.estimate_prior else settings.min_probability,
        warning_mode="never",
    )
    shift = 0.0
    if settings.estimate_prior:
        weights = db.duckdb_con.sql(
            f"select match_weight from {predictions.physical_name}"
        ).fetchnumpy()["match_weight"]
        shift = _log2_odds(_estimated_prior(np.asarray(weights), prior, total)) - _log2_odds(prior)
    ids = "record_id_l as left_id, record_id_r as right_id"
    if new:  # the new record on the left, whichever side Splink put it
        left = f"source_dataset_l = '{new}'"
        ids = (
            f"case when {left} then record_id_l else record_id_r end as left_id, "
            f"case when {left} then record_id_r else record_id_l end as right_id"
        )
    evidence = _evidence_sql(trained)
    weight = f"(match_weight + {shift!r})"
    bits = f"least(greatest({weight}, -{_MAX_BITS}), {_MAX_BITS})"
    sql = (
        f"select * from (select {ids}, 1 / (1 + pow(2, -{bits})) as match_probability, "
        f"{weight} as match_weight, {evidence} as evidence from {predictions.physical_name}) "
        f"where match_probability >= {settings.min_probability!r} "
        "order by match_probability desc, left_id, right_id"
    )
    pairs: pd.DataFrame = db.duckdb_con.sql(sql).df()
    return pairs


# ---------------------------------------------------------------------------------
# Public functions.


def train(records: pd.DataFrame, settings: MatchSettings | None = None) -> MatchModel:
    """Train a model on one table of records, without labels (u sampled, m by EM)."""
    settings = settings or MatchSettings()
    table = _prepare(records, name="records")
    with _engine(settings) as db:
        return _train(_linker(db, {"records": table}, settings, None), settings, table)


def score_pairs(
    records: pd.DataFrame, settings: MatchSettings | None = None, *, model: MatchModel | None = None
) -> pd.DataFrame:
    """Score candidate duplicate pairs within one table of records.

    Trains a model on the records unless one is given. Returns the pairs scored at or
    above `settings.min_probability`, in PAIR_COLUMNS, most probable first.
    """
    settings = settings or MatchSettings()
    table = _prepare(records, name="records")
    if len(table) < 2:
        return _no_pairs()
    with _engine(settings) as db:
        linker = _linker(db, {"records": table}, settings, model)
        if model is None:
            _train(linker, settings, table)
        return _pairs(db, linker, settings, _total_pairs({"records": table}))


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
    new_table = _prepare(new, name="new records")
    existing_table = _prepare(existing, name="existing records")
    if new_table.empty or existing_table.empty:
        return _no_pairs()
    if model is None:
        renamed = new_table.assign(record_id="new:" + new_table["record_id"])
        if CLUSTER_COLUMN in renamed.columns:  # the two tables name their clusters apart
            renamed[CLUSTER_COLUMN] = "new:" + renamed[CLUSTER_COLUMN]
        both = pd.concat([existing_table, renamed], ignore_index=True)
        with _engine(settings) as db:
            model = _train(_linker(db, {"records": both}, settings, None), settings, both)
    with _engine(settings) as db:
        tables = {
            "existing": existing_table.drop(columns=CLUSTER_COLUMN, errors="ignore"),
            "new": new_table.drop(columns=CLUSTER_COLUMN, errors="ignore"),
        }
        linker = _linker(db, tables, settings, model)
        return _pairs(db, linker, settings, _total_pairs(tables), new="new")


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
    tables = {"records": _prepare(records, name="records")}
    if existing is not None:
        tables["existing"] = _prepare(existing, name="existing records")
    with _engine(settings) as db:
        names = [db.register(t, table_name=n).physical_name for n, t in tables.items()]
        return _count_pairs(db, names, settings.blocking_rules)


def decide(
    pairs: pd.DataFrame, settings: MatchSettings | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split scored pairs into those to merge and those to put before a reviewer."""
    settings = settings or MatchSettings()
    probability = pairs["match_probability"]
    apart = pd.Series(False, index=pairs.index)
    if settings.must_agree and len(pairs):
        apart = pairs["evidence"].map(
            partial(_disagrees, fields=settings.must_agree, unless=settings.unless_same)
        )
    merge = (probability >= settings.merge_threshold) & ~apart
    review = (probability >= settings.review_threshold) & ~merge & ~apart
    return pairs[merge].reset_index(drop=True), pairs[review].reset_index(drop=True)


# Levels at which two values are not the same one mistyped.
_DISAGREEING = frozenset({"different", "Jaro-Winkler >=0.7"})


def _disagrees(evidence: str, fields: tuple[str, ...], unless: tuple[str, ...]) -> bool:
    levels = json.loads(evidence)
    if any(levels.get(field) == "exact" for field in unless):
        return False
    return any(levels.get(field) in _DISAGREEING for field in fields)


def clusters(
    pairs: pd.DataFrame, threshold: float, *, record_ids: Iterable[str] = (), threads: int = 2
) -> dict[str, str]:
    """Return each record's cluster: the connected components of pairs at or above threshold.

    Splink's clustering names a cluster by one of its records. Records of `record_ids`
    in no such pair are clusters of their own.
    """
    edges = pairs.loc[pairs["match_probability"] >= threshold, ["left_id", "right_id"]]
    ids = set(edges["left_id"]) | set(edges["right_id"]) | set(record_ids)
    if edges.empty:
        return {i: i for i in ids}
    nodes = pd.DataFrame({"record_id": pd.Series(sorted(ids), dtype="string")})
    edges = edges.rename(columns={"left_id": "record_id_l", "right_id": "record_id_r"})
    with _engine(MatchSettings(threads=threads)) as db:
        result = cluster_pairwise_predictions_at_threshold(
            nodes, edges.astype("string"), db_api=db, node_id_column_name="record_id"
        )
        rows = db.duckdb_con.sql(f"select record_id, cluster_id from {result.physical_name}")
        return {str(r): str(c) for r, c in rows.fetchall()}


def evaluate(
    predicted_pairs: pd.DataFrame | Iterable[tuple[str, str]],
    true_pairs: pd.DataFrame | Iterable[tuple[str, str]],
    *,
    closure: bool = False,
) -> Scores:
    """Return pairwise precision, recall and F1 of predicted against true pairs.

    Pairs are unordered. With `closure`, the predicted pairs are first completed by
    transitivity (any two records of one cluster make a pair), which is what merging
    them all does.
    """
    predicted = _pair_set(predicted_pairs)
    if closure:
        predicted = _closure(predicted)
    truth = _pair_set(true_pairs)
    tp = len(predicted & truth)
    fp, fn = len(predicted) - tp, len(truth) - tp
    precision = tp / (tp + fp) if predicted else 1.0
    recall = tp / (tp + fn) if truth else 1.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0  # harmonic mean of P and R
    return Scores(precision=precision, recall=recall, f1=f1, tp=tp, fp=fp, fn=fn)


def _pair_set(pairs: pd.DataFrame | Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    if isinstance(pairs, pd.DataFrame):
        pairs = zip(pairs["left_id"].astype(str), pairs["right_id"].astype(str), strict=True)
    return {(a, b) if a < b else (b, a) for a, b in pairs if a != b}


def _closure(pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Return every pair within the connected components of the pairs."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]  # path halving keeps the trees flat
            x = parent[x]
        return x

    for a, b in pairs:
        parent[root(a)] = root(b)
    members: dict[str, list[str]] = {}
    for x in parent:
        members.setdefault(root(x), []).append(x)
    return {
        (a, b) if a < b else (b, a)
        for group in members.values()
        for i, a in enumerate(group)
        for b in group[i + 1 :]
    }
