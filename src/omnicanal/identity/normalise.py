"""Normalised identifiers: what "the same email, phone, card, name or address" means.

Identity resolution joins records on these values, so every function here is pure,
never raises on bad input (it answers None: "not an identifier"), and is idempotent:
normalising a normalised value gives it back unchanged.

Rules, and why:

- **email**: edges trimmed (spaces, no-break spaces, zero-width characters), a
  `mailto:` prefix or a display name (`Jean <jean@x.fr>`) removed, syntax checked by
  `email-validator` without DNS, all lower case, the domain in ASCII (punycode: `@münchen.de`
  and `@xn--mnchen-3ya.de` are one address). Gmail dots and `+tags` are **kept**:
  `marie.martin@` and `mariemartin@`, or `famille+leo@` and `famille+ines@`, may be
  different people sharing a mailbox provider or a family inbox, and a wrong merge costs
  more than a missed one. `strip_plus_tags=True` drops the tag for those who want it.
- **phone**: E.164 (`+33612345678`) through `phonenumbers`, numbers without a country
  code read in the given region (France by default: `06 12 34 56 78`, `6 12 34 56 78`,
  `0033 6…`, `+33 (0)6…` are one number; numbers from the French overseas departments
  written nationally, `0690…`, are recognised too). Only numbers valid in their plan count.
- **card**: loyalty card numbers lose spaces and dashes and are upper-cased; leading
  zeros are kept (`0012-3456` is `00123456`, never `123456`).
- **name**: for matching only: accents and case dropped, `œ` -> `oe`, apostrophes joined
  (`d'Artagnan` -> `dartagnan`), other punctuation and hyphens separate words.
- **postcode**: French postcodes are five digits; a spreadsheet's `7501` (leading zero
  lost) becomes `07501`, `75008 CEDEX 08` becomes `75008`.
- **address key**: street (abbreviations expanded: `av.` -> `avenue`, `bd` -> `boulevard`)
  and postcode, the key households are found by.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

# Identifier kinds, in the order of priority an event's identifiers are listed in: the
# most deliberate and stable first (a login, a card handed at the till), the device-bound
# anonymous id last. `external` stands for every `external:<type>`.
IDENTIFIER_KINDS = ("user_id", "card", "email", "phone", "external", "anonymous_id")
_PRIORITY = {kind: rank for rank, kind in enumerate(IDENTIFIER_KINDS)}

MAX_ID_CHARS = 255
MAX_CARD_CHARS = 64
MAX_POSTCODE_CHARS = 16
MAX_ADDRESS_KEY_CHARS = 240
_MAX_EMAIL_INPUT = 512
_MAX_PHONE_INPUT = 64

# Characters that show as nothing and arrive by copy-paste from web pages and spreadsheets.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"))
_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"
_CARD_DROP = {**_INVISIBLE, **dict.fromkeys(map(ord, _DASHES))}
# Letters that Unicode does not decompose but that people write without their stroke.
_FOLD = str.maketrans(
    {"œ": "oe", "æ": "ae", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}
)
_APOSTROPHES = dict.fromkeys(map(ord, "'’‘`´ʼ"))
_NON_WORD = re.compile(r"[\W_]+")
_PHONE_EXTENSION = re.compile(r"\s*(?:poste|extension|ext\.?|p\.)\s*\d{1,6}\s*$", re.IGNORECASE)
_DIGITS_ONLY = re.compile(r"\+?[0-9]{11,15}")
# French overseas departments use their own country codes; numbers written nationally
# (0690…, 0692…) are tried in these regions when they are not valid French numbers.
_FR_OVERSEAS = ("GP", "MQ", "GF", "RE", "YT", "PM", "BL", "MF")
_FR_POSTCODE_COUNTRIES = frozenset(
    {"FR", "FRA", "FRANCE", "GP", "MQ", "GF", "RE", "YT", "PM", "BL", "MF", "MC"}
)
_FR_POSTCODE = re.compile(r"(?:FR?-?)?([0-9]{4,5})(?:\.0)?(?:CEDEX[0-9]{0,3})?")
_OTHER_POSTCODE_DROP = re.compile(r"[^A-Z0-9 -]+")


def _text(value: object) -> str | None:
    """Return a value as text: strings as they are, whole numbers without `.0`."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return str(int(value))  # spreadsheets turn numbers-as-text into floats
    return None


def _clean(value: str) -> str:
    """Drop invisible characters and trim whitespace (no-break spaces included)."""
    return value.translate(_INVISIBLE).strip()


# -- email -----------------------------------------------------------------------------


def normalise_email(value: object, *, strip_plus_tags: bool = False) -> str | None:
    """Return the address lower-cased with an ASCII domain, or None when it is not one."""
    if not isinstance(value, str):
        return None
    return _email(value, bool(strip_plus_tags))


@lru_cache(maxsize=65_536)
def _email(text: str, strip_plus_tags: bool) -> str | None:
    text = _clean(text)
    if text[:7].lower() == "mailto:":
        text = text[7:].strip()
    if not text or len(text) > _MAX_EMAIL_INPUT:
        return None
    try:
        checked = validate_email(text.lower(), check_deliverability=False, allow_display_name=True)
    except (EmailNotValidError, UnicodeError):
        return None
    local = unicodedata.normalize("NFC", checked.local_part.lower())
    address = f"{local}@{checked.ascii_domain}"
    if strip_plus_tags and "+" in local[1:]:
        # Kept tagged when the untagged part is no address (`jean.+promo@`).
        untagged = _email(f"{local[: local.index('+', 1)]}@{checked.ascii_domain}", False)
        address = untagged or address
    return address if len(address) <= MAX_ID_CHARS else None


# -- phone -----------------------------------------------------------------------------


def normalise_phone(value: object, region: str = "FR") -> str | None:
    """Return the number in E.164 (`+33612345678`), or None when it is not a valid one.

    Args:
        value: the number as typed, or a number from a spreadsheet (`612345678`).
        region: ISO country whose national format applies to numbers without `+`/`00`.
    """
    text = _text(value)
    if text is None:
        return None
    return _phone(text, region.upper() if isinstance(region, str) else "FR")


@lru_cache(maxsize=65_536)
def _phone(text: str, region: str) -> str | None:
    text = _PHONE_EXTENSION.sub("", _clean(text))
    if not text or len(text) > _MAX_PHONE_INPUT:
        return None
    found = _parse_phone(text, region)
    if found is None and region == "FR" and text.lstrip().startswith("0"):
        found = next((n for r in _FR_OVERSEAS if (n := _parse_phone(text, r))), None)
    if found is None and _DIGITS_ONLY.fullmatch(text) and not text.startswith("0"):
        # A full international number stored as a number: the `+` was lost on the way.
        found = _parse_phone("+" + text.lstrip("+"), region)
    return found


def _parse_phone(text: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# -- card, name, postcode, address ----------------------------------------------------


def normalise_card(value: object) -> str | None:
    """Return a loyalty card number without spaces or dashes, upper-cased, zeros kept."""
    text = _text(value)
    if text is None:
        return None
    card = "".join(text.upper().translate(_CARD_DROP).split())
    if not card or len(card) > MAX_CARD_CHARS:
        return None
    return card


def normalise_name(value: object) -> str | None:
    """Return a name for matching: no accents, lower case, words separated by one space."""
    if not isinstance(value, str):
        return None
    return _words(value) or None


def _words(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).casefold()
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.translate(_FOLD).translate(_APOSTROPHES).translate(_INVISIBLE)
    return " ".join(_NON_WORD.sub(" ", text).split())


def normalise_postcode(value: object, country: str | None = "FR") -> str | None:
    """Return a postcode: five digits in France (leading zero restored), else upper case."""
    text = _text(value)
    if text is None:
        return None
    text = unicodedata.normalize("NFKC", _clean(text)).upper()
    code = (country or "FR").strip().upper() if isinstance(country, str | None) else "FR"
    if code in _FR_POSTCODE_COUNTRIES:
        return _french_postcode(text)
    other = " ".join(_OTHER_POSTCODE_DROP.sub(" ", text).split()).strip("- ")
    return other if 0 < len(other) <= MAX_POSTCODE_CHARS else None


def _french_postcode(text: str) -> str | None:
    match = _FR_POSTCODE.fullmatch("".join(text.split()))
    if match is None or not match[1].isascii():
        return None
    digits = match[1].zfill(5)
    return digits if 1 <= int(digits[:2]) <= 98 else None


# Abbreviations of French street types and titles, as written on forms and labels.
_STREET_WORDS = {
    "av": "avenue",
    "ave": "avenue",
    "aven": "avenue",
    "bd": "boulevard",
    "bld": "boulevard",
    "blvd": "boulevard",
    "boul": "boulevard",
    "r": "rue",
    "pl": "place",
    "chem": "chemin",
    "ch": "chemin",
    "all": "allee",
    "imp": "impasse",
    "fbg": "faubourg",
    "fg": "faubourg",
    "faub": "faubourg",
    "rte": "route",
    "crs": "cours",
    "sq": "square",
    "pas": "passage",
    "rpt": "rond point",
    "res": "residence",
    "bat": "batiment",
    "st": "saint",
    "ste": "sainte",
    "gal": "general",
    "mal": "marechal",
    "pdt": "president",
}
_NUMBER_SUFFIX = re.compile(r"\b([0-9]+)(bis|ter|quater)\b")
_NUMBER_WORDS = frozenset({"n", "no", "numero"})


def address_key(street: object, postcode: object, city: object = None) -> str | None:
    """Return the household key `street|postcode`, or None when either is missing.

    The city is not part of the key: the postcode already places the street, and city
    spellings vary for one place (`Paris`, `Paris 8e`, `PARIS CEDEX 08`).
    """
    del city
    if not isinstance(street, str):
        return None
    code = normalise_postcode(postcode)
    expanded: list[str] = []
    before_number = False
    for word in reversed(_NUMBER_SUFFIX.sub(r"\1 \2", _words(street)).split()):
        if word in _NUMBER_WORDS and before_number:
            continue  # `n° 12`: the number sign is noise, the number is kept
        expanded.append(_STREET_WORDS.get(word, word))
        before_number = word.isdigit()
    expanded.reverse()
    if not expanded or code is None:
        return None
    key = f"{' '.join(expanded)}|{code}"
    return key if len(key) <= MAX_ADDRESS_KEY_CHARS else None


# -- identifiers of a message --------------------------------------------------------

_EMAIL_TRAITS = ("email",)
_PHONE_TRAITS = ("phone", "mobile", "phoneNumber")
_CARD_TRAITS = ("card", "loyaltyCard", "loyalty_card", "cardNumber", "card_number")
# externalIds types that name one of our own kinds are normalised as that kind.
_EXTERNAL_AS = {
    "email": "email",
    "phone": "phone",
    "user_id": "user_id",
    "userid": "user_id",
    "anonymous_id": "anonymous_id",
    "anonymousid": "anonymous_id",
    "card": "card",
}
_QUALIFIER_DROP = re.compile(r"[^a-z0-9_.-]+")


def _raw_id(value: object) -> str | None:
    """Return a userId/anonymousId as text (numbers allowed), trimmed; None when empty."""
    text = _text(value)
    if text is None:
        return None
    text = _clean(text)
    return text if 0 < len(text) <= MAX_ID_CHARS else None


def _external_kind(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    name = _QUALIFIER_DROP.sub("_", value.strip().lower()).strip("_.-")
    if not name:
        return None
    return _EXTERNAL_AS.get(name) or f"external:{name[:55]}"


def _message_traits(msg: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Return the user traits of a message (identify: `traits`, then `context.traits`).

    A group call's `traits` describe the company, not the person, so only its
    `context.traits` are read; RudderStack puts identify traits under `context.traits`.
    """
    found: list[Mapping[str, Any]] = []
    if msg.get("type") == "identify" and isinstance(msg.get("traits"), Mapping):
        found.append(msg["traits"])
    context = msg.get("context")
    if isinstance(context, Mapping) and isinstance(context.get("traits"), Mapping):
        found.append(context["traits"])
    return found


def _external_ids(context: object, region: str) -> list[tuple[str, str]]:
    ids = context.get("externalIds") if isinstance(context, Mapping) else None
    if not isinstance(ids, list):
        return []
    out: list[tuple[str, str]] = []
    for item in ids:
        if not isinstance(item, Mapping):
            continue
        kind = _external_kind(item.get("type"))
        value = _normalise_kind(kind, item.get("id"), region) if kind else None
        if kind and value:
            out.append((kind, value))
    return out


def _normalise_kind(kind: str, value: object, region: str) -> str | None:
    if kind == "email":
        return normalise_email(value)
    if kind == "phone":
        return normalise_phone(value, region)
    if kind == "card":
        return normalise_card(value)
    return _raw_id(value)


def identifiers_from_message(msg: Mapping[str, Any], region: str = "FR") -> list[tuple[str, str]]:
    """Return the message's (kind, normalised value) pairs, by priority, without repeats.

    Kinds: `user_id` (userId), `card`, `email`, `phone` (from the user traits),
    `external:<type>` (Segment's `context.externalIds`), `anonymous_id` (anonymousId).
    An alias call's `previousId` is read as an `anonymous_id`: aliasing joins an
    anonymous visitor's history to the user who signed up, which is its use in Segment's
    libraries. A person holds one userId, so a previousId that was an old userId is not
    joined as one (re-keying a customer is a merge done deliberately, not by an event).
    """
    if not isinstance(msg, Mapping):
        return []
    found: list[tuple[str, str]] = []
    if (user_id := _raw_id(msg.get("userId"))) is not None:
        found.append(("user_id", user_id))
    for traits in _message_traits(msg):
        for kind, names in (("card", _CARD_TRAITS), ("email", _EMAIL_TRAITS)):
            found += [
                (kind, v) for n in names if (v := _normalise_kind(kind, traits.get(n), region))
            ]
        found += [
            ("phone", v) for n in _PHONE_TRAITS if (v := normalise_phone(traits.get(n), region))
        ]
    found += _external_ids(msg.get("context"), region)
    if (anonymous_id := _raw_id(msg.get("anonymousId"))) is not None:
        found.append(("anonymous_id", anonymous_id))
    if msg.get("type") == "alias" and (previous := _raw_id(msg.get("previousId"))) is not None:
        found.append(("anonymous_id", previous))
    unique = list(dict.fromkeys(found))
    unique.sort(key=lambda pair: _PRIORITY[pair[0].split(":", 1)[0]])
    return unique
