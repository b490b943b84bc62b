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

from omnicanal.identity.matching.decisions import clusters, decide, evaluate
from omnicanal.identity.matching.scoring import (
    count_candidate_pairs,
    estimate_candidate_pairs,
    link_pairs,
    score_pairs,
    train,
)
from omnicanal.identity.matching.settings import (
    CLUSTER_COLUMN,
    DEFAULT_BLOCKING,
    DEFAULT_DETERMINISTIC,
    DEFAULT_TRAINING_BLOCKS,
    PAIR_COLUMNS,
    RECORD_COLUMNS,
    MatchModel,
    MatchSettings,
    Scores,
)

__all__ = [
    "CLUSTER_COLUMN",
    "DEFAULT_BLOCKING",
    "DEFAULT_DETERMINISTIC",
    "DEFAULT_TRAINING_BLOCKS",
    "PAIR_COLUMNS",
    "RECORD_COLUMNS",
    "MatchModel",
    "MatchSettings",
    "Scores",
    "clusters",
    "count_candidate_pairs",
    "decide",
    "estimate_candidate_pairs",
    "evaluate",
    "link_pairs",
    "score_pairs",
    "train",
]
