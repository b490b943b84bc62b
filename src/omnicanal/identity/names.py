"""Whether two first names can be the same person's, as people write them at a till.

Names arrive normalised (`normalise_name`: no accents, lower case). The same person's first
name comes back with a typing slip (`marie`, `maire`), shortened to an initial or to the
first part of a compound (`j`, `jean` for `jean pierre`), or swapped with the last name on a
paper form. Anything further apart is another person: a family member giving the household's
e-mail at the till, a partner using the same phone.
"""

from __future__ import annotations

#: Edits (insert, delete, replace, swap of neighbours) a typed name may carry: one for
#: names of five letters or fewer, two beyond.
_SHORT = 5


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, replacements and swaps
    of two neighbouring letters each count one."""
    if a == b:
        return 0
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def _first_part(name: str) -> str:
    return name.replace("-", " ").split(" ", 1)[0]


def same_first_name(a: str, b: str) -> bool:
    """True when first names `a` and `b` may be one person's (see the module's rules)."""
    if not a or not b:
        return True
    short, long = sorted((a, b), key=len)
    if long.startswith(short) or _first_part(a) == _first_part(b):
        return True  # an initial, or one part of a compound name
    allowed = 1 if len(long) <= _SHORT else 2
    return edit_distance(a, b) <= allowed


def other_person(
    first: str | None, last: str | None, known_first: str | None, known_last: str | None
) -> bool:
    """True when a record named (`first`, `last`) is not the person known by the other
    names: both first names are given and cannot be the same, even with the fields swapped."""
    if not first or not known_first:
        return False
    if same_first_name(first, known_first):
        return False
    swapped = (last and same_first_name(last, known_first)) or (
        known_last and same_first_name(first, known_last)
    )
    return not swapped
