"""First names that can be one person's, and those that cannot."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnicanal.identity.names import edit_distance, other_person, same_first_name


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("marie", "marie", True),
        ("marie", "maire", True),  # two letters swapped
        ("nathalie", "nthalie", True),  # one dropped
        ("nathalie", "natalhie", True),
        ("christophe", "cristophee", True),  # two slips in a long name
        ("j", "jean", True),  # an initial
        ("jean", "jean pierre", True),  # part of a compound name
        ("jean-pierre", "jean paul", True),  # the same first part: kept together
        ("marie", "sophie", False),
        ("lucas", "louis", False),
        ("emma", "anna", False),
        ("hugo", "hugues", False),
        ("paul", "pauline", True),  # a prefix: cannot be told from a shortened name
        ("", "marie", True),
    ],
)
def test_same_first_name(a: str, b: str, same: bool) -> None:
    assert same_first_name(a, b) is same
    assert same_first_name(b, a) is same


def test_swapped_fields_are_the_same_person() -> None:
    assert not other_person("dupont", "marie", "marie", "dupont")
    assert not other_person("marie", "dupont", "dupont", "marie")
    assert other_person("sophie", "dupont", "marie", "dupont")
    assert not other_person(None, "dupont", "marie", "dupont")  # nothing to compare
    assert not other_person("sophie", "dupont", None, None)


def test_edit_distance_by_hand() -> None:
    assert edit_distance("", "abc") == 3
    assert edit_distance("abc", "acb") == 1  # a swap of neighbours
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("ca", "abc") == 3  # optimal string alignment, not full Damerau


@given(st.text("abcde", max_size=8), st.text("abcde", max_size=8))
def test_edit_distance_is_a_symmetric_bounded_count(a: str, b: str) -> None:
    d = edit_distance(a, b)
    assert d == edit_distance(b, a)
    assert abs(len(a) - len(b)) <= d <= max(len(a), len(b))
    assert (d == 0) == (a == b)
