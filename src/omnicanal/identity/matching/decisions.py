"""From scored pairs to decisions: merge, review or leave apart; clusters; quality."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import partial

import pandas as pd
from splink.clustering import cluster_pairwise_predictions_at_threshold

from omnicanal.identity.matching.settings import MatchSettings, Scores
from omnicanal.identity.matching.training import engine


def decide(
    pairs: pd.DataFrame, settings: MatchSettings | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split scored pairs into those to merge and those to put before a reviewer."""
    settings = settings or MatchSettings()
    probability = pairs["match_probability"]
    apart = pd.Series(False, index=pairs.index)
    wanted = probability >= settings.review_threshold  # the evidence of the rest is not read
    if settings.must_agree and wanted.any():
        apart[wanted] = pairs.loc[wanted, "evidence"].map(
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
    with engine(MatchSettings(threads=threads)) as db:
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
