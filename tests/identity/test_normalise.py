"""Normalised identifiers: real-world spellings, and the invariants matching relies on."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from omnicanal.identity.normalise import (
    IDENTIFIER_KINDS,
    address_key,
    identifiers_from_message,
    normalise_card,
    normalise_email,
    normalise_name,
    normalise_phone,
    normalise_postcode,
)

# -- email -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("jean.dupont@gmail.com", "jean.dupont@gmail.com"),
        (" Jean.Dupont@Gmail.COM ", "jean.dupont@gmail.com"),
        ("\u00a0marie@orange.fr\u00a0", "marie@orange.fr"),
        ("ma\u200brie@orange.fr\ufeff", "marie@orange.fr"),
        ("\tMARIE@ORANGE.FR\n", "marie@orange.fr"),
        ("mailto:Marie@Orange.fr", "marie@orange.fr"),
        ("Jean Dupont <JD@Wanadoo.FR>", "jd@wanadoo.fr"),
        # Gmail dots and +tags may be distinct people: kept by default
        ("marie.martin@gmail.com", "marie.martin@gmail.com"),
        ("mariemartin@gmail.com", "mariemartin@gmail.com"),
        ("famille+leo@free.fr", "famille+leo@free.fr"),
        ("o'brien@sfr.fr", "o'brien@sfr.fr"),
        # international domains in ASCII, whichever way they were typed
        ("Léa@München.de", "léa@xn--mnchen-3ya.de"),
        ("lea@xn--mnchen-3ya.de", "lea@xn--mnchen-3ya.de"),
        ("contact@ÉCOLE.fr", "contact@xn--cole-9oa.fr"),
        ("a@example.com", "a@example.com"),
        # not addresses
        ("jean.dupont@", None),
        ("@gmail.com", None),
        ("jean dupont@gmail.com", None),
        ("jean..dupont@gmail.com", None),
        ("jean.dupont@gmail", None),
        ("jean@localhost", None),
        ("jean@[192.168.0.1]", None),
        ('"jean dupont"@gmail.com', None),
        ("jean.dupont@gmail..com", None),
        ("non communiqué", None),
        ("", None),
        ("   ", None),
        ("x" * 300 + "@gmail.com", None),
        (None, None),
        (42, None),
        (["a@b.fr"], None),
    ],
)
def test_email(raw, expected) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("famille+leo@free.fr", "famille@free.fr"),
        ("Famille+Ines+2@Free.fr", "famille@free.fr"),
        ("marie.martin@gmail.com", "marie.martin@gmail.com"),  # dots are never removed
        ("+tag@free.fr", "+tag@free.fr"),  # nothing would be left before the tag
    ],
)
def test_email_plus_tags_are_stripped_on_request(raw, expected) -> None:
    assert normalise_email(raw, strip_plus_tags=True) == expected


# -- phone -------------------------------------------------------------------------------

MOBILE = "+33612345678"


@pytest.mark.parametrize(
    "raw",
    [
        "06 12 34 56 78",
        "0612345678",
        "06.12.34.56.78",
        "06-12-34-56-78",
        "06 12 34 56 78 ",
        "+33 6 12 34 56 78",
        "+33 (0)6 12 34 56 78",
        "+33612345678",
        "+330612345678",
        "0033 6 12 34 56 78",
        "0033612345678",
        "6 12 34 56 78",
        "612345678",
        612345678,
        612345678.0,
        33612345678,
        "33612345678",
        "tel:+33612345678",
        "０６１２３４５６７８",
        "06 12 34 56 78 poste 12",
        "\u00a006\u00a012\u00a034\u00a056\u00a078",
    ],
)
def test_phone_spellings_of_one_french_mobile(raw) -> None:
    assert normalise_phone(raw) == MOBILE


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("01 42 68 53 00", "FR", "+33142685300"),
        ("09 70 80 90 10", "FR", "+33970809010"),
        ("0690 12 34 56", "FR", "+590690123456"),  # Guadeloupe
        ("0696 12 34 56", "FR", "+596696123456"),  # Martinique
        ("0692 12 34 56", "FR", "+262692123456"),  # La Réunion
        ("+44 7911 123456", "FR", "+447911123456"),
        ("447911123456", "FR", "+447911123456"),
        ("07911 123456", "GB", "+447911123456"),
        ("07911 123456", "gb", "+447911123456"),
        ("07911 123456", "FR", None),
        ("+1 650-253-0000", "FR", "+16502530000"),
        ("+32 470 12 34 56", "FR", "+32470123456"),
        ("0470 12 34 56", "BE", "+32470123456"),
        ("+33 6 12 34 56 78", "XX", MOBILE),
        ("06 12 34 56 78", "XX", None),
    ],
)
def test_phone_regions(raw, region, expected) -> None:
    assert normalise_phone(raw, region) == expected


@pytest.mark.parametrize(
    "raw",
    [
        *("12", "06 12 34", "0000000000", "+33 6 12 34 56 78 9", "abc", "", " ", "+"),
        *(None, True, math.nan, math.inf, 6.1e8 + 0.5, ["0612345678"], "06" * 40),
    ],
)
def test_phone_invalid(raw) -> None:
    assert normalise_phone(raw) is None


# -- card, name, postcode ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0012 3456 7890", "001234567890"),
        ("0012-3456-7890", "001234567890"),
        ("0012\u20133456", "00123456"),  # an en dash from a word processor
        ("\u200b0012", "0012"),
        ("fid-ab12cd", "FIDAB12CD"),
        (" Ab 12 ", "AB12"),
        (12345, "12345"),
        (12345.0, "12345"),
        ("", None),
        (" - ", None),
        ("C" * 65, None),
        (None, None),
        (False, None),
        (1.5, None),
    ],
)
def test_card(raw, expected) -> None:
    assert normalise_card(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Élodie", "elodie"),
        ("ÉLODIE", "elodie"),
        ("  Jean-Pierre   ", "jean pierre"),
        ("Jean Pierre", "jean pierre"),
        ("D'Artagnan", "dartagnan"),
        ("d’Artagnan", "dartagnan"),
        ("Œuvray", "oeuvray"),
        ("LÆTITIA", "laetitia"),
        ("Müller-Lüdenscheidt", "muller ludenscheidt"),
        ("Øster", "oster"),
        ("Łukasz", "lukasz"),
        ("Straße", "strasse"),
        ("José María", "jose maria"),
        ("Dupont,Jean", "dupont jean"),
        ("M. Dupont (Jr.)", "m dupont jr"),
        ("ﬁlippi", "filippi"),
        ("Nguyễn", "nguyen"),
        ("Σωκράτης", "σωκρατησ"),  # case-folded: final and medial sigma are one letter
        ("...", None),
        ("", None),
        ("   ", None),
        (None, None),
        (12, None),
    ],
)
def test_name(raw, expected) -> None:
    assert normalise_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("75008", "FR", "75008"),
        (" 75008 ", "FR", "75008"),
        (75008, "FR", "75008"),
        ("1000", "FR", "01000"),  # a spreadsheet dropped the leading zero
        (1000, "FR", "01000"),
        (1000.0, "FR", "01000"),
        ("1000.0", "FR", "01000"),
        ("75 008", "FR", "75008"),
        ("75008 CEDEX 08", "FR", "75008"),
        ("75008 Cedex", "FR", "75008"),
        ("F-75008", "FR", "75008"),
        ("FR-75008", "FR", "75008"),
        ("20000", "FR", "20000"),
        ("97110", "FR", "97110"),
        ("97200", "MQ", "97200"),
        ("98000", "MC", "98000"),
        ("75008", None, "75008"),
        ("75008", "France", "75008"),
        ("750", "FR", None),
        ("750080", "FR", None),
        ("00100", "FR", None),
        ("99000", "FR", None),
        ("ABCDE", "FR", None),
        ("７５００８", "FR", "75008"),
        ("", "FR", None),
        (None, "FR", None),
        (True, "FR", None),
        ("SW1A 1AA", "GB", "SW1A 1AA"),
        (" sw1a  1aa ", "gb", "SW1A 1AA"),
        ("1000", "BE", "1000"),
        ("10115", "DE", "10115"),
        ("K1A 0B1", "CA", "K1A 0B1"),
        ("--", "GB", None),
    ],
)
def test_postcode(raw, country, expected) -> None:
    assert normalise_postcode(raw, country) == expected


# -- address key -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spellings", "postcodes", "key"),
    [
        (
            [
                "12 bis, av. du Gal de Gaulle",
                "12bis Avenue du Général de Gaulle",
                "12 BIS AVENUE DU GENERAL DE GAULLE",
                "12 Bis, ave du Général-de-Gaulle",
            ],
            [7501, "07501", "7501"],
            "12 bis avenue du general de gaulle|07501",
        ),
        (
            ["3 bd St-Michel", "3 boulevard Saint Michel", "3, Bld. St Michel"],
            ["75005"],
            "3 boulevard saint michel|75005",
        ),
        (["8 r. de la Paix", "8 rue de la Paix"], ["75002"], "8 rue de la paix|75002"),
        (
            ["4 pl. de la République", "4 place de la république"],
            ["69001"],
            "4 place de la republique|69001",
        ),
        (["1 imp. des Lilas", "1 impasse des lilas"], ["33000"], "1 impasse des lilas|33000"),
        (["5 chem. des Vignes", "5 chemin des vignes"], ["13100"], "5 chemin des vignes|13100"),
        (["6 all. des Tilleuls", "6 allée des Tilleuls"], ["44000"], "6 allee des tilleuls|44000"),
        (
            ["10 fbg Saint-Antoine", "10 Faubourg St Antoine"],
            ["75011"],
            "10 faubourg saint antoine|75011",
        ),
        (["N° 7 ave Foch", "7 avenue Foch"], ["75116"], "7 avenue foch|75116"),
        (
            ["14ter rue Sainte-Catherine", "14 ter r. Ste Catherine"],
            ["33000"],
            "14 ter rue sainte catherine|33000",
        ),
    ],
)
def test_address_key_spellings_agree(spellings, postcodes, key) -> None:
    found = {
        address_key(s, p, city) for s in spellings for p in postcodes for city in ("Paris", None)
    }
    assert found == {key}


def test_address_keys_that_must_differ() -> None:
    keys = {
        address_key("12 rue de la Paix", "75002"),
        address_key("14 rue de la Paix", "75002"),
        address_key("12 bis rue de la Paix", "75002"),
        address_key("12 ter rue de la Paix", "75002"),
        address_key("12 rue de la Paix", "75001"),
    }
    assert len(keys) == 5


@pytest.mark.parametrize(
    ("street", "postcode"),
    [
        *((None, "75002"), ("", "75002"), ("...", "75002"), ("8 rue de la Paix", None)),
        *(("8 rue de la Paix", ""), ("8 rue de la Paix", "ABC"), (8, "75002")),
    ],
)
def test_address_key_needs_street_and_postcode(street, postcode) -> None:
    assert address_key(street, postcode, "Paris") is None


# -- identifiers of a message ------------------------------------------------------------


def test_identify_lists_identifiers_by_priority() -> None:
    message = {
        "type": "identify",
        "userId": 1234,
        "anonymousId": "b3f1c5e2-8d3a-4b0e-9a7c-2f1e6d5c4b3a",
        "traits": {
            "email": " Marie.Martin@Gmail.com ",
            "phone": "06 12 34 56 78",
            "mobile": "+33 6 12 34 56 78",  # the same number: listed once
            "phoneNumber": "01 42 68 53 00",
            "loyaltyCard": "0012 3456",
            "firstName": "Marie",
        },
        "context": {
            "externalIds": [
                {"id": "7520918", "type": "shopify_customer_id", "collection": "users"},
                {"id": "MARIE.MARTIN@gmail.com", "type": "email", "encoding": "none"},
                {"id": "0034", "type": "Salesforce Contact ID", "collection": "users"},
            ]
        },
    }
    assert identifiers_from_message(message) == [
        ("user_id", "1234"),
        ("card", "00123456"),
        ("email", "marie.martin@gmail.com"),
        ("phone", "+33612345678"),
        ("phone", "+33142685300"),
        ("external:shopify_customer_id", "7520918"),
        ("external:salesforce_contact_id", "0034"),
        ("anonymous_id", "b3f1c5e2-8d3a-4b0e-9a7c-2f1e6d5c4b3a"),
    ]


@pytest.mark.parametrize(
    "card_trait", ["card", "loyaltyCard", "loyalty_card", "cardNumber", "card_number"]
)
def test_every_card_trait_name(card_trait) -> None:
    message = {"type": "identify", "anonymousId": "a", "traits": {card_trait: "fid 001"}}
    assert ("card", "FID001") in identifiers_from_message(message)


def test_traits_of_other_calls_are_in_the_context() -> None:
    track = {
        "type": "track",
        "event": "Order Completed",
        "anonymousId": "a-1",
        "traits": {"email": "ignored@x.fr"},
        "context": {"traits": {"email": "lea@x.fr", "phone": "0612345678"}},
    }
    assert identifiers_from_message(track) == [
        ("email", "lea@x.fr"),
        ("phone", "+33612345678"),
        ("anonymous_id", "a-1"),
    ]
    # RudderStack's SDKs put identify traits under context.traits
    rudder = {"type": "identify", "userId": "u1", "context": {"traits": {"email": "u@x.fr"}}}
    assert identifiers_from_message(rudder) == [("user_id", "u1"), ("email", "u@x.fr")]


def test_a_group_calls_traits_describe_the_company() -> None:
    group = {"type": "group", "groupId": "g1", "userId": "u1", "traits": {"email": "rh@acme.fr"}}
    assert identifiers_from_message(group) == [("user_id", "u1")]


def test_alias_previous_id_is_an_anonymous_id() -> None:
    alias = {"type": "alias", "userId": "C-001", "previousId": "anon-42"}
    assert identifiers_from_message(alias) == [("user_id", "C-001"), ("anonymous_id", "anon-42")]
    track = {"type": "track", "userId": "C-001", "previousId": "anon-42"}
    assert identifiers_from_message(track) == [("user_id", "C-001")]


def test_unusable_values_are_left_out() -> None:
    message = {
        "type": "identify",
        "userId": "   ",
        "anonymousId": True,
        "traits": {"email": "pas d'email", "phone": "12", "card": "", "mobile": None},
        "context": {
            "externalIds": [
                {"id": "", "type": "crm"},
                {"id": "x", "type": "!!!"},
                {"id": "y"},
                "not an object",
                {"id": {"nested": 1}, "type": "crm"},
            ]
        },
    }
    assert identifiers_from_message(message) == []
    assert identifiers_from_message("not a message") == []  # type: ignore[arg-type]
    assert identifiers_from_message({"context": {"externalIds": "x"}, "traits": []}) == []


# -- invariants --------------------------------------------------------------------------

TEXT = st.text(max_size=60)
ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    TEXT,
    st.lists(st.integers(), max_size=2),
)
EMAILS = st.builds(
    lambda local, domain, pad: f"{pad}{local}@{domain}{pad}",
    st.from_regex(r"[A-Za-z0-9._+'-]{1,20}", fullmatch=True)
    | st.text(alphabet="aéÉüßİıK+.", min_size=1, max_size=8),
    st.from_regex(r"[A-Za-z0-9-]{1,12}\.(fr|com|DE|co\.uk)", fullmatch=True)
    | st.sampled_from(["münchen.de", "ÉCOLE.fr", "xn--cole-9oa.fr", "straße.de"]),
    st.sampled_from(["", " ", "\u00a0", "\u200b"]),
)
PHONES = st.builds(
    "".join,
    st.lists(
        st.sampled_from([*"0123456789", " ", ".", "-", "+", "(", ")", "0033", "+33", "06"]),
        max_size=20,
    ),
)
STREETS = st.builds(
    " ".join,
    st.lists(
        st.sampled_from(["12", "12bis", "av.", "bd", "r", "St-", "Gal", "N°", "de", "la", "Paix"])
        | TEXT,
        max_size=6,
    ),
)
NORMALISERS = [
    normalise_email,
    lambda v: normalise_email(v, strip_plus_tags=True),
    normalise_phone,
    lambda v: normalise_phone(v, "GB"),
    normalise_card,
    normalise_name,
    normalise_postcode,
    lambda v: normalise_postcode(v, "GB"),
]
FAST = hypothesis_settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])


@given(ANYTHING | EMAILS | PHONES, st.sampled_from(range(len(NORMALISERS))))
@FAST
def test_normalisers_never_raise_and_are_idempotent(value, which) -> None:
    normalise = NORMALISERS[which]
    once = normalise(value)
    assert once is None or (isinstance(once, str) and once)
    if once is not None:
        assert normalise(once) == once


@given(EMAILS)
@FAST
def test_emails_are_lower_case_ascii_domains(raw) -> None:
    email = normalise_email(raw)
    if email is not None:
        local, _, domain = email.rpartition("@")
        assert domain.isascii()
        assert domain == domain.lower()
        assert local == local.lower()
        assert email == email.strip()
        if raw.isascii():
            assert normalise_email(raw.upper()) == email


@given(PHONES, st.sampled_from(["FR", "GB", "BE", "US"]))
@FAST
def test_phones_are_e164(raw, region) -> None:
    phone = normalise_phone(raw, region)
    if phone is not None:
        assert phone[0] == "+"
        assert phone[1:].isdigit()
        assert 8 <= len(phone) <= 16
        assert normalise_phone(phone, "FR") == phone  # E.164 does not depend on the region


@given(TEXT)
@FAST
def test_names_are_single_spaced_lower_case_words(raw) -> None:
    name = normalise_name(raw)
    if name is not None:
        assert name == name.strip()
        assert "  " not in name
        assert name == name.casefold()
        assert normalise_name(name.upper()) == name or not name.isascii()


@given(STREETS, st.integers(0, 99999) | TEXT)
@FAST
def test_an_address_key_is_its_own_key(street, postcode) -> None:
    key = address_key(street, postcode)
    if key is not None:
        street_part, _, postcode_part = key.rpartition("|")
        assert address_key(street_part, postcode_part) == key


MESSAGE_KEYS = st.sampled_from(
    [
        *("type", "userId", "anonymousId", "previousId", "traits", "context", "externalIds"),
        *("email", "phone", "mobile", "card", "loyaltyCard", "id", "collection"),
    ]
)
JSON = st.recursive(
    ANYTHING | EMAILS | PHONES | st.sampled_from(["identify", "alias", "track", "group"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(MESSAGE_KEYS | st.text(max_size=4), children, max_size=5)
    ),
    max_leaves=25,
)
_CHECKS = {
    "email": normalise_email,
    "phone": normalise_phone,
    "card": normalise_card,
}


@given(st.dictionaries(MESSAGE_KEYS, JSON, max_size=6))
@hypothesis_settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_identifiers_of_any_message(message) -> None:
    found = identifiers_from_message(message)
    assert len(found) == len(set(found))
    ranks = [IDENTIFIER_KINDS.index(kind.split(":", 1)[0]) for kind, _ in found]
    assert ranks == sorted(ranks)
    for kind, value in found:
        assert value
        assert value == value.strip()
        check = _CHECKS.get(kind)
        assert check is None or check(value) == value
        assert identifiers_from_message(message) == found
