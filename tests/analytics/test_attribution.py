"""Attribution models: hand-computed cases, invariants, and the channelattribution oracle."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnicanal.analytics import attribution as at
from omnicanal.core.errors import InvalidError

DAY = at.DAY_MS
CHANNELS = ["a", "b", "c", "d", "e"]


def credits(frame: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Map channel -> (conversions, value) credit."""
    columns = zip(frame["channel"], frame["conversions"], frame["value"], strict=True)
    return {str(channel): (float(conv), float(value)) for channel, conv, value in columns}


def assert_credits(frame: pd.DataFrame, expected: dict[str, tuple[float, float]]) -> None:
    got = credits(frame)
    assert set(got) == set(expected)
    for channel, (conv, value) in expected.items():
        assert got[channel][0] == pytest.approx(conv, abs=1e-9), channel
        assert got[channel][1] == pytest.approx(value, abs=1e-9), channel
    assert list(frame.columns) == list(at.RESULT_COLUMNS)


@pytest.fixture
def shop() -> at.Journeys:
    """Four journeys: three convert (100, 50 and 10 euros), one does not."""
    touches = pd.DataFrame(
        [
            ("j1", 2 * DAY, "web"),  # rows out of order on purpose
            ("j1", 0, "email"),
            ("j1", 1 * DAY, "store"),
            ("j2", 0, "social"),
            ("j2", 3 * DAY, "email"),
            ("j3", 5 * DAY, "web"),
            ("j4", 0, "email"),
            ("j4", 1 * DAY, "social"),
        ],
        columns=["journey_id", "timestamp", "channel"],
    )
    outcomes = pd.DataFrame(
        {
            "journey_id": ["j1", "j2", "j3", "j4"],
            "converted": [True, True, True, False],
            "value": [100.0, 50.0, 10.0, 0.0],
        }
    )
    return at.journeys_from_touchpoints(touches, outcomes)


def test_first_touch(shop: at.Journeys) -> None:
    assert_credits(
        at.first_touch(shop),
        {"email": (1, 100), "social": (1, 50), "web": (1, 10), "store": (0, 0)},
    )


def test_last_touch(shop: at.Journeys) -> None:
    assert_credits(
        at.last_touch(shop),
        {"email": (1, 50), "social": (0, 0), "web": (2, 110), "store": (0, 0)},
    )


def test_last_non_direct_looks_past_direct_visits(shop: at.Journeys) -> None:
    # j1 ends on a web visit: the store visit before it gets the credit; j3 has
    # only a direct touch, which keeps it.
    assert_credits(
        at.last_non_direct(shop),
        {"email": (1, 50), "social": (0, 0), "web": (1, 10), "store": (1, 100)},
    )
    assert_credits(
        at.last_non_direct(shop, direct={"store"}),
        {"email": (1, 50), "social": (0, 0), "web": (2, 110), "store": (0, 0)},
    )


def test_linear(shop: at.Journeys) -> None:
    assert_credits(
        at.linear(shop),
        {
            "email": (1 / 3 + 1 / 2, 100 / 3 + 25),
            "store": (1 / 3, 100 / 3),
            "web": (1 / 3 + 1, 100 / 3 + 10),
            "social": (1 / 2, 25),
        },
    )


def test_position_based(shop: at.Journeys) -> None:
    assert_credits(
        at.position_based(shop),
        {"email": (0.9, 65), "store": (0.2, 20), "web": (1.4, 50), "social": (0.5, 25)},
    )
    # 30/30 leaves 40 % to the middle; a two-touch journey still splits evenly
    assert_credits(
        at.position_based(shop, first=0.3, last=0.3),
        {"email": (0.8, 55), "store": (0.4, 40), "web": (1.3, 40), "social": (0.5, 25)},
    )


def test_time_decay(shop: at.Journeys) -> None:
    # half-life 1 day: j1 weighs 1/4, 1/2, 1 (ages 2, 1, 0 days); j2 weighs 1/8, 1
    assert_credits(
        at.time_decay(shop, half_life_days=1),
        {
            "email": (1 / 7 + 8 / 9, 100 / 7 + 50 * 8 / 9),
            "store": (2 / 7, 200 / 7),
            "web": (4 / 7 + 1, 400 / 7 + 10),
            "social": (1 / 9, 50 / 9),
        },
    )


def test_time_decay_default_half_life_is_seven_days(shop: at.Journeys) -> None:
    weights = np.exp2(-np.array([2.0, 1.0, 0.0]) / 7)
    j1 = weights / weights.sum()
    j2 = np.exp2(-np.array([3.0, 0.0]) / 7)
    j2 = j2 / j2.sum()
    assert_credits(
        at.attribute(shop, model="time_decay"),
        {
            "email": (j1[0] + j2[1], 100 * j1[0] + 50 * j2[1]),
            "store": (j1[1], 100 * j1[1]),
            "web": (j1[2] + 1, 100 * j1[2] + 10),
            "social": (j2[0], 50 * j2[0]),
        },
    )


def test_shapley_counts_each_channel_once_per_journey() -> None:
    paths = pd.DataFrame(
        {
            "path": ["email > email > web", "web", "sms > email"],
            "conversions": [2, 1, 0],
            "nulls": [0, 3, 4],
            "value": [60.0, 5.0, 0.0],
        }
    )
    journeys = at.journeys_from_paths(paths)
    assert_credits(
        at.shapley(journeys),
        {"email": (1, 30), "web": (2, 35), "sms": (0, 0)},
    )
    assert_credits(
        at.linear(journeys),
        {"email": (4 / 3, 40), "web": (5 / 3, 25), "sms": (0, 0)},
    )


def test_shapley_with_more_channels_than_a_bit_mask_holds() -> None:
    # without repeated channels, Shapley equals linear; 70 channels take the other route
    names = [f"c{i:02d}" for i in range(70)]
    paths = pd.DataFrame(
        {
            "path": [" > ".join(names[i : i + 3]) for i in range(0, 68)],
            "conversions": [i % 3 for i in range(68)],
            "nulls": [1] * 68,
            "value": [float(i) for i in range(68)],
        }
    )
    journeys = at.journeys_from_paths(paths)
    shapley, linear = at.shapley(journeys), at.linear(journeys)
    assert len(shapley) == 70
    pd.testing.assert_frame_equal(shapley, linear)


def test_markov_chain_without_cycle() -> None:
    # start→a ½, start→b ½, a→b 1, b→conversion ½: P = ½.
    # Without a: P = ¼ (removal effect ½); without b: P = 0 (removal effect 1).
    paths = pd.DataFrame({"path": ["a > b", "b"], "conversions": [1, 0], "nulls": [0, 1]})
    paths["value"] = [30.0, 0.0]
    journeys = at.journeys_from_paths(paths)
    effects = at.markov_removal_effects(journeys)
    assert effects["removal_effect"].tolist() == pytest.approx([0.5, 1.0])
    assert_credits(at.markov(journeys), {"a": (1 / 3, 10), "b": (2 / 3, 20)})


def test_markov_chain_with_a_cycle() -> None:
    # a→b ⅓, a→conversion ⅓, a→null ⅓, b→a 1: P(a) = ⅓ + ⅓·P(a) = ½.
    # Without b: P = ⅓, removal effect ⅓; without a: removal effect 1.
    paths = pd.DataFrame({"path": ["a > b > a", "a"], "conversions": [1, 0], "nulls": [0, 1]})
    paths["value"] = [8.0, 0.0]
    journeys = at.journeys_from_paths(paths)
    effects = at.markov_removal_effects(journeys)
    assert effects["removal_effect"].tolist() == pytest.approx([1.0, 1 / 3])
    assert_credits(at.markov(journeys), {"a": (0.75, 6), "b": (0.25, 2)})


def test_markov_second_order_sees_which_channel_came_before() -> None:
    # b converts after a, never after c: order 1 cannot tell, order 2 can.
    paths = pd.DataFrame({"path": ["a > b", "c > b"], "conversions": [1, 0], "nulls": [0, 1]})
    journeys = at.journeys_from_paths(paths, value=None)
    assert_credits(at.markov(journeys), {"a": (0.25, 0), "b": (0.5, 0), "c": (0.25, 0)})
    assert_credits(
        at.attribute(journeys, model="markov", order=2),
        {"a": (0.5, 0), "b": (0.5, 0), "c": (0, 0)},
    )


def test_no_conversion_gives_no_credit() -> None:
    paths = pd.DataFrame({"path": ["a > b", "b"], "conversions": [0, 0], "nulls": [3, 1]})
    journeys = at.journeys_from_paths(paths, value=None)
    for model in at.MODELS:
        if model == "time_decay":
            continue
        frame = at.attribute(journeys, model=model)
        assert frame["conversions"].sum() == 0, model
        assert frame["share"].sum() == 0, model


def test_journeys_from_events_cuts_at_each_conversion() -> None:
    events = pd.DataFrame(
        [
            ("p1", 10, "email", False, None),
            ("p1", 20, "web", False, None),
            ("p1", 30, "store:paris", True, 80.0),
            ("p1", 40, "sms", False, None),
            ("p2", 5, "social", False, None),
            ("p2", 7, "web", True, 20.0),
            ("p2", 7, "email", False, None),  # same instant: counted before the purchase
        ],
        columns=["profile_id", "timestamp_ms", "channel", "is_conversion", "value"],
    )
    table = at.paths_table(at.journeys_from_events(events))
    assert table.to_dict("records") == [
        {"path": "email > web > store:paris", "conversions": 1.0, "nulls": 0.0, "value": 80.0},
        {"path": "sms", "conversions": 0.0, "nulls": 1.0, "value": 0.0},
        {"path": "social > email > web", "conversions": 1.0, "nulls": 0.0, "value": 20.0},
    ]


def test_journeys_from_events_with_a_named_conversion_event() -> None:
    events = pd.DataFrame(
        {
            "profile_id": ["p1", "p1", "p1"],
            "timestamp_ms": [1, 2, 3],
            "channel": ["email", "web", "web"],
            "event": ["Email Opened", "Order Completed", "Page Viewed"],
            "value": [None, 42.0, None],
        }
    )
    journeys = at.journeys_from_events(events, conversion_event="Order Completed")
    assert at.paths_table(journeys)["path"].tolist() == ["email > web", "web"]
    assert_credits(at.last_touch(journeys), {"email": (0, 0), "web": (1, 42)})


def test_no_events_give_no_journeys() -> None:
    events = pd.DataFrame(
        {"profile_id": [], "timestamp_ms": [], "channel": [], "is_conversion": []}
    )
    journeys = at.journeys_from_events(events)
    assert len(journeys.lengths) == 0
    assert at.markov(journeys).empty


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["p1", "p2", "p3"]),
            st.integers(0, 50),
            st.sampled_from(CHANNELS),
            st.booleans(),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_events_become_one_journey_per_conversion_plus_tails(rows) -> None:
    events = pd.DataFrame(rows, columns=["profile_id", "timestamp_ms", "channel", "is_conversion"])
    journeys = at.journeys_from_events(events)
    conversions = int(events["is_conversion"].sum())
    last_conversion = events[events["is_conversion"]].groupby("profile_id")["timestamp_ms"].max()
    after = events["timestamp_ms"] > events["profile_id"].map(last_conversion).fillna(-1)
    tails = events.loc[after & ~events["is_conversion"], "profile_id"].nunique()
    assert journeys.conversions.sum() == conversions
    assert len(journeys.lengths) == conversions + tails
    assert journeys.lengths.sum() == len(events)
    assert (journeys.lengths > 0).all()


def test_lookback_drops_touches_before_the_window() -> None:
    touches = pd.DataFrame(
        {
            "journey_id": [1, 1, 1, 2],
            "timestamp": [0, 10 * DAY, 11 * DAY, 0],
            "channel": ["tv", "email", "web", "tv"],
        }
    )
    outcomes = pd.DataFrame(
        {"journey_id": [1], "converted": [True], "value": [9.0], "conversion_ms": [12 * DAY]}
    )
    journeys = at.journeys_from_touchpoints(touches, outcomes)
    assert_credits(at.first_touch(journeys), {"tv": (1, 9), "email": (0, 0), "web": (0, 0)})
    recent = at.lookback(journeys, days=7)
    assert_credits(at.first_touch(recent), {"tv": (0, 0), "email": (1, 9), "web": (0, 0)})
    # a window shorter than the gap to the conversion leaves nothing to credit
    assert at.first_touch(at.lookback(journeys, days=0.5))["conversions"].sum() == 0


def test_datetime_timestamps_match_milliseconds(shop: at.Journeys) -> None:
    touches = pd.DataFrame(
        {
            "journey_id": ["a", "a"],
            "timestamp": pd.to_datetime(["2026-01-01", "2026-01-03"]),
            "channel": ["email", "web"],
        }
    )
    outcomes = pd.DataFrame({"journey_id": ["a"], "converted": [True]})
    journeys = at.journeys_from_touchpoints(touches, outcomes)
    assert journeys.times_ms is not None
    assert np.diff(journeys.times_ms).tolist() == [2 * DAY]
    assert_credits(
        at.time_decay(journeys, half_life_days=2), {"email": (1 / 3, 0), "web": (2 / 3, 0)}
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: at.journeys_from_touchpoints(pd.DataFrame({"journey_id": [1]})), "timestamp"),
        (
            lambda: at.journeys_from_paths(
                pd.DataFrame({"path": ["a"], "conversions": [-1], "nulls": [0], "value": [0]})
            ),
            "conversions",
        ),
        (
            lambda: at.journeys_from_paths(
                pd.DataFrame({"path": ["a >> b"], "conversions": [1]}), nulls=None, value=None
            ),
            "empty step",
        ),
        (
            lambda: at.journeys_from_touchpoints(
                pd.DataFrame({"journey_id": [None], "timestamp": [1], "channel": ["web"]})
            ),
            "journey_id has empty",
        ),
        (lambda: at.attribute(_tiny(), model="u_shaped"), "u_shaped"),
        (lambda: at.attribute(_tiny(), model="linear", order=2), "order"),
        (lambda: at.time_decay(_tiny()), "touch times"),
        (lambda: at.markov(_tiny(), order=0), "order"),
    ],
)
def test_errors_name_the_field(call, message) -> None:
    with pytest.raises(InvalidError, match=message):
        call()


def _tiny() -> at.Journeys:
    return at.journeys_from_paths(
        pd.DataFrame({"path": ["a > b"], "conversions": [1], "nulls": [0], "value": [1.0]})
    )


# ---------------------------------------------------------------------------------
# Properties


path_tables = st.lists(
    st.tuples(
        st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=6),
        st.integers(0, 5),
        st.integers(0, 5),
        st.floats(0, 1000, allow_nan=False),
    ),
    min_size=1,
    max_size=12,
)


def _journeys(rows) -> at.Journeys:
    frame = pd.DataFrame(rows, columns=["path", "conversions", "nulls", "value"])
    frame["value"] = frame["value"] * (frame["conversions"] > 0)
    return at.journeys_from_paths(frame)


@settings(max_examples=60, deadline=None)
@given(path_tables, st.sampled_from([m for m in at.MODELS if m != "time_decay"]))
def test_credit_adds_up_to_conversions_and_value(rows, model) -> None:
    journeys = _journeys(rows)
    frame = at.attribute(journeys, model=model)
    total = journeys.conversions.sum()
    assert frame["conversions"].sum() == pytest.approx(total, abs=1e-6)
    assert frame["value"].sum() == pytest.approx(journeys.value.sum(), rel=1e-9, abs=1e-6)
    assert (frame["conversions"] >= -1e-9).all()
    assert frame["share"].sum() == pytest.approx(1.0 if total > 0 else 0.0)


def _shapley_by_definition(journeys: at.Journeys) -> dict[str, float]:
    """Σ over coalitions S without c of |S|!(n-|S|-1)!/n! · (v(S ∪ c) - v(S))."""
    sets = [
        frozenset(journeys.codes[journeys.offsets[j] : journeys.offsets[j + 1]].tolist())
        for j in range(len(journeys.lengths))
    ]
    n = len(journeys.channels)

    def v(coalition: frozenset[int]) -> float:
        return float(
            sum(c for s, c in zip(sets, journeys.conversions, strict=True) if s <= coalition)
        )

    result = {}
    for c in range(n):
        others = [x for x in range(n) if x != c]
        total = 0.0
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                total += weight * (v(s | {c}) - v(s))
        result[journeys.channels[c]] = total
    return result


@settings(max_examples=40, deadline=None)
@given(path_tables)
def test_shapley_matches_the_subset_definition(rows) -> None:
    journeys = _journeys(rows)
    expected = _shapley_by_definition(journeys)
    got = {k: conv for k, (conv, _) in credits(at.shapley(journeys)).items()}
    assert got == pytest.approx(expected, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(path_tables, st.integers(1, 3))
def test_markov_ignores_how_paths_are_grouped(rows, order) -> None:
    # the same paths, one row each or aggregated, give the same chain
    journeys = _journeys(rows)
    grouped = at.journeys_from_paths(at.paths_table(journeys), sep=" > ")
    ours = at.markov(journeys, order=order).set_index("channel")
    theirs = at.markov(grouped, order=order).set_index("channel")
    pd.testing.assert_frame_equal(ours, theirs, atol=1e-9, rtol=1e-9)


@settings(max_examples=40, deadline=None)
@given(path_tables)
def test_markov_removal_effects_lie_between_zero_and_one(rows) -> None:
    effects = at.markov_removal_effects(_journeys(rows))["removal_effect"]
    assert ((effects >= -1e-9) & (effects <= 1 + 1e-9)).all()


# ---------------------------------------------------------------------------------
# The oracle: channelattribution estimates the same removal effects by simulation


def _random_paths(seed: int, n: int) -> pd.DataFrame:
    """Journeys over six channels whose conversion odds depend on the channels met."""
    rng = np.random.default_rng(seed)
    channels = np.array(["display", "email", "search", "social", "sms", "store"])
    popularity = np.array([0.28, 0.22, 0.18, 0.14, 0.1, 0.08])
    lift = np.array([0.01, 0.05, 0.08, 0.0, 0.03, 0.12])
    lengths = rng.integers(1, 8, size=n)
    codes = rng.choice(len(channels), size=lengths.sum(), p=popularity)
    offsets = np.r_[0, np.cumsum(lengths)]
    rows = []
    for j in range(n):
        path = codes[offsets[j] : offsets[j + 1]]
        odds = 0.03 + lift[np.unique(path)].sum() + (0.1 if path[-1] == 5 else 0.0)
        converted = rng.random() < odds
        value = rng.gamma(2.0, 40.0) if converted else 0.0
        rows.append((" > ".join(channels[path]), int(converted), int(not converted), value))
    frame = pd.DataFrame(rows, columns=["path", "conversions", "nulls", "value"])
    return frame.groupby("path", as_index=False).sum()


def test_markov_agrees_with_channelattribution() -> None:
    from ChannelAttribution import markov_model  # type: ignore[import-untyped]

    paths = _random_paths(seed=7, n=20_000)
    ours = at.markov(at.journeys_from_paths(paths)).set_index("channel")
    # max_step bounds each simulated path: the default (the longest observed path) cuts
    # long cycling paths and biases removal effects, so it is set well above it.
    theirs = markov_model(
        paths,
        "path",
        "conversions",
        var_value="value",
        var_null="nulls",
        order=1,
        nsim_start=1e6,
        max_step=200,
        sep=">",
        ncore=1,
        seed=0,
        conv_par=0.005,
        verbose=False,
        flg_pro=False,
    )
    theirs = theirs.set_index("channel_name").loc[ours.index]
    total = paths["conversions"].sum()
    gap = (ours["conversions"] - theirs["total_conversions"]).abs()
    assert (gap <= 0.01 * total).all(), gap / total
    value_gap = (ours["value"] - theirs["total_conversion_value"]).abs()
    assert (value_gap <= 0.01 * paths["value"].sum()).all(), value_gap / paths["value"].sum()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 30), st.sampled_from(CHANNELS)),
        min_size=1,
        max_size=25,
    ),
    st.lists(st.booleans(), min_size=7, max_size=7),
    st.floats(0, 40),
    st.sampled_from(sorted(at.MODELS)),
)
def test_credit_after_lookback_adds_up_for_journeys_left_with_touches(
    rows, converted, days, model
) -> None:
    touches = pd.DataFrame(rows, columns=["journey_id", "timestamp", "channel"])
    touches["timestamp"] *= DAY
    outcomes = pd.DataFrame({"journey_id": range(7), "converted": converted})
    outcomes["value"] = 10.0 * outcomes["journey_id"]
    outcomes["conversion_ms"] = 31 * DAY
    journeys = at.lookback(at.journeys_from_touchpoints(touches, outcomes), days=days)
    kept = journeys.lengths > 0
    frame = at.attribute(journeys, model=model)
    assert frame["conversions"].sum() == pytest.approx(journeys.conversions[kept].sum())
    assert frame["value"].sum() == pytest.approx(journeys.value[kept].sum())
