"""How identifiers get damaged when people or staff type them by hand.

Till receipts, workshop sign-up sheets and call-centre notes carry what was typed, not
what is true: a letter missed or doubled, two letters swapped, first and last name
swapped, accents dropped, capitals, a phone number written one of many ways, a postcode
digit wrong, an e-mail domain misspelt, a second or a family address instead of the usual
one. Each function takes a `random.Random` so a chunk always gets the same damage.
"""

from __future__ import annotations

import random
import unicodedata

_NEIGHBOURS = {
    "a": "zqs",
    "b": "vn",
    "c": "xv",
    "d": "sf",
    "e": "zr",
    "f": "dg",
    "g": "fh",
    "h": "gj",
    "i": "uo",
    "j": "hk",
    "k": "jl",
    "l": "km",
    "m": "l",
    "n": "bm",
    "o": "ip",
    "p": "o",
    "q": "as",
    "r": "et",
    "s": "qd",
    "t": "ry",
    "u": "yi",
    "v": "cb",
    "w": "x",
    "x": "wc",
    "y": "tu",
    "z": "ae",
}  # AZERTY
_DOMAIN_TYPOS = {
    "gmail.com": ("gmial.com", "gmail.fr", "gmal.com"),
    "hotmail.fr": ("hotmial.fr", "hotmail.com", "hotmal.fr"),
    "orange.fr": ("orange.com", "ornage.fr"),
    "yahoo.fr": ("yaho.fr", "yahoo.com"),
    "free.fr": ("fre.fr",),
    "laposte.net": ("laposte.fr",),
    "outlook.fr": ("outlook.com",),
}


def strip_accents(text: str) -> str:
    """Return text without its accents, as many tills and keyboards write it."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def typo(text: str, rnd: random.Random, edits: int = 1) -> str:
    """Apply one or two keyboard slips: a neighbour key, a missed, doubled or swapped letter."""
    chars = list(text)
    for _ in range(edits):
        if len(chars) < 3:
            break
        i = rnd.randrange(1, len(chars) - 1)
        slip = rnd.randrange(4)
        if slip == 0 and chars[i].lower() in _NEIGHBOURS:
            chars[i] = rnd.choice(_NEIGHBOURS[chars[i].lower()])
        elif slip == 1:
            del chars[i]
        elif slip == 2:
            chars.insert(i, chars[i])
        else:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
    result = "".join(chars)
    return result if result != text else text + text[-1]


def name(
    first: str,
    last: str,
    rnd: random.Random,
    *,
    slip: float,
    swap: float,
    plain: float,
    upper: float,
) -> tuple[str, str]:
    """Return a first and last name as typed: slips, swapped fields, no accents, capitals."""
    if rnd.random() < slip:
        if rnd.random() < 0.5:
            first = typo(first, rnd, 1 + (rnd.random() < 0.2))
        else:
            last = typo(last, rnd, 1 + (rnd.random() < 0.2))
    if rnd.random() < swap:
        first, last = last, first
    if rnd.random() < plain:
        first, last = strip_accents(first), strip_accents(last)
    if rnd.random() < upper:
        last = last.upper()
    return first, last


def phone(e164: str, rnd: random.Random) -> str:
    """Return a French mobile number written one of the many usual ways."""
    national = "0" + e164[3:]
    pairs = [national[i : i + 2] for i in range(0, 10, 2)]
    style = rnd.randrange(8)
    return (
        national,
        " ".join(pairs),
        ".".join(pairs),
        "-".join(pairs),
        e164,
        f"+33 {e164[3]} " + " ".join(e164[i : i + 2] for i in range(4, 12, 2)),
        "0033" + e164[3:],
        f"+33 (0){e164[3:]}",
    )[style]


def postcode(code: str, rnd: random.Random) -> str:
    """Return a postcode with one digit wrong or two swapped."""
    digits = list(code)
    i = rnd.randrange(2, 5)
    if rnd.random() < 0.5:
        digits[i] = str((int(digits[i]) + rnd.randrange(1, 9)) % 10)
    else:
        digits[i - 1], digits[i] = digits[i], digits[i - 1]
    result = "".join(digits)
    return result if result != code else code[:4] + str((int(code[4]) + 1) % 10)


def email(address: str, rnd: random.Random) -> str:
    """Return an e-mail address with a slip in the name or a misspelt domain."""
    local, _, domain = address.partition("@")
    if domain in _DOMAIN_TYPOS and rnd.random() < 0.5:
        return f"{local}@{rnd.choice(_DOMAIN_TYPOS[domain])}"
    for _ in range(5):  # a slip still makes an address, or it would not have been accepted
        damaged = typo(local, rnd)
        if ".." not in damaged and not damaged.startswith(".") and not damaged.endswith("."):
            return f"{damaged}@{domain}"
    return f"{local}{rnd.randrange(10)}@{domain}"
