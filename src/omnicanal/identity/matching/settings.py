"""What matching is told and what it learns: settings, the trained model, scores."""

from __future__ import annotations

import json
from dataclasses import dataclass

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
# hashes; between them they survive a typo or a gap in any one field. Each must stay
# small however many records there are: a block is every pair of records sharing its
# key, so a rule on a common surname and a town pairs thousands with thousands. At a
# million demo customers these rules give about 29 million pairs, with a store's
# rules (identity.linkage) about 25 million; "same last name and city" alone once gave
# 311 million (docs/benchmarks.md). A condition on one side only ("l.first_name is
# null") is applied before the join; one on either side ("l... or r...") only after
# it, on every pair the join made: such rules come in pairs, one per side.
DEFAULT_BLOCKING = (
    # A typo past the third letter of one name, or anywhere in the other but its first
    # letter. Two letters instead of three found no more true pairs on FEBRL nor on
    # the demo, for 11 of the 40 million pairs at a million demo customers.
    "l.postcode = r.postcode and substr(l.last_name, 1, 3) = substr(r.last_name, 1, 3)"
    " and substr(l.first_name, 1, 1) = substr(r.first_name, 1, 1)",
    "l.postcode = r.postcode and substr(l.last_name, 1, 1) = substr(r.last_name, 1, 1)"
    " and substr(l.first_name, 1, 3) = substr(r.first_name, 1, 3)",
    "l.email = r.email",
    "l.phone = r.phone",
    "l.birth_date = r.birth_date and substr(l.first_name, 1, 1) = substr(r.first_name, 1, 1)",
    "l.birth_date = r.birth_date and substr(l.postcode, 1, 2) = substr(r.postcode, 1, 2)",
    "l.first_name = r.first_name and l.last_name = r.last_name"
    " and substr(l.postcode, 1, 2) = substr(r.postcode, 1, 2)",
    "l.first_name = r.last_name and l.last_name = r.first_name",
    "l.street = r.street and substr(l.postcode, 1, 2) = substr(r.postcode, 1, 2)",
    # A postcode missing or mistyped: the town instead.
    "l.last_name = r.last_name and l.city = r.city"
    " and substr(l.first_name, 1, 2) = substr(r.first_name, 1, 2)",
    # No first name to block on.
    "l.first_name is null and l.last_name = r.last_name and l.city = r.city",
    "r.first_name is null and l.last_name = r.last_name and l.city = r.city",
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
    # the scored pairs (see `estimated_prior`), which a store needs: its deterministic
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
    # Scoring more candidate pairs than this is refused before it starts, naming what
    # each rule brings. At a million demo customers a store's rules give 25 million.
    max_candidate_pairs: float = 1e8
    # A birth date, e-mail, phone or street held by more records than this share of
    # them (and at least `placeholder_min`) is a placeholder (1900-01-01, a shop's own
    # address), not evidence: it is read as missing.
    placeholder_share: float = 0.001
    placeholder_min: int = 100
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
            "max_candidate_pairs": self.max_candidate_pairs > 0,
            "placeholder_share": 0 < self.placeholder_share <= 1,
            "placeholder_min": self.placeholder_min >= 2,
        }
        errors = [{"field": f, "value": getattr(self, f)} for f, ok in checks.items() if not ok]
        if errors:
            raise InvalidError(
                "Match settings need 0 <= min_probability <= review_threshold <= "
                "merge_threshold <= 1, review_threshold > 0, a recall in (0, 1], "
                "at least one blocking and one training rule, threads >= 1, "
                "max_candidate_pairs > 0, a placeholder_share in (0, 1] and "
                "placeholder_min >= 2.",
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
