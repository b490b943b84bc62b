"""Channel derivation on messages as the Segment and RudderStack SDKs build them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import ValidationError

from omnicanal.core.channel_rules import (
    ChannelInfo,
    Rule,
    compile_rules,
    configured_rules,
    derive_channel,
)
from omnicanal.core.channels import KINDS, MediaClass, parse_channel
from omnicanal.core.settings import RuleSpec, Settings, get_settings

SHOP = "https://www.maison-lea.fr"
UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
# analytics.js names the campaign's fields after the utm parameters without their prefix,
# except utm_campaign, which becomes `name`.
_CAMPAIGN_NAMES = {"utm_campaign": "name"}


def page(path: str = "/robe-lin", referrer: str = "", **context: Any) -> dict[str, Any]:
    """Return a page call as analytics.js (Segment's browser SDK) sends it."""
    url = SHOP + path
    parts = urlsplit(url)
    search = f"?{parts.query}" if parts.query else ""
    info = {"path": parts.path, "referrer": referrer, "search": search, "title": "Robe en lin"}
    info["url"] = url
    built: dict[str, Any] = {
        "page": info,
        "userAgent": UA,
        "locale": "fr-FR",
        "library": {"name": "analytics.js", "version": "npm:next-1.70.0"},
    }
    campaign = {
        _CAMPAIGN_NAMES.get(k, k.removeprefix("utm_")): v
        for k, v in parse_qsl(parts.query)
        if k.startswith("utm_")
    }
    if campaign:
        built["campaign"] = campaign
    built.update(context)
    return {
        "type": "page",
        "anonymousId": "6f0b9a4e-2f43-4a4c-9d8e-0c7d3b8f1a21",
        "messageId": "ajs-next-1732400000000-4a1b",
        "timestamp": "2026-11-23T10:00:00.000Z",
        "properties": dict(info),
        "context": built,
    }


def track(event: str = "Order Completed", **context: Any) -> dict[str, Any]:
    """Return a track call from a server or a till, without a page."""
    return {
        "type": "track",
        "event": event,
        "userId": "C-001",
        "properties": {"order_id": "T-1", "total": 59.9},
        "context": context,
    }


P, OW, E, H = MediaClass.PAID, MediaClass.OWNED, MediaClass.EARNED, MediaClass.HORS_MEDIA

CASES = [
    # -- the referrer ------------------------------------------------------------------
    ("web", page(referrer="https://www.google.com/"), "search:google", E, True, "referrer"),
    ("web", page(referrer="https://www.google.fr/"), "search:google", E, True, "referrer"),
    ("web", page(referrer="https://www.google.co.uk/"), "search:google", E, True, "referrer"),
    (
        "web",
        page(referrer="https://www.bing.com/search?q=robe+lin"),
        "search:bing",
        E,
        True,
        "referrer",
    ),
    ("web", page(referrer="https://www.qwant.com/"), "search:qwant", E, True, "referrer"),
    ("web", page(referrer="https://www.ecosia.org/"), "search:ecosia", E, True, "referrer"),
    ("web", page(referrer="https://duckduckgo.com/"), "search:duckduckgo", E, True, "referrer"),
    ("web", page(referrer="https://fr.search.yahoo.com/"), "search:yahoo", E, True, "referrer"),
    ("web", page(referrer="https://yandex.ru/search/"), "search:yandex", E, True, "referrer"),
    ("web", page(referrer="https://www.baidu.com/link?url=x"), "search:baidu", E, True, "referrer"),
    ("web", page(referrer="https://search.lilo.org/"), "search:lilo", E, True, "referrer"),
    (
        "web",
        page(referrer="android-app://com.google.android.googlequicksearchbox/"),
        "search:google",
        E,
        True,
        "referrer",
    ),
    ("web", page(referrer="https://l.facebook.com/"), "social:facebook", E, True, "referrer"),
    ("web", page(referrer="https://m.facebook.com/"), "social:facebook", E, True, "referrer"),
    ("web", page(referrer="https://l.instagram.com/"), "social:instagram", E, True, "referrer"),
    ("web", page(referrer="https://www.tiktok.com/"), "social:tiktok", E, True, "referrer"),
    (
        "web",
        page(referrer="https://fr.pinterest.com/pin/1"),
        "social:pinterest",
        E,
        True,
        "referrer",
    ),
    ("web", page(referrer="https://pin.it/abc"), "social:pinterest", E, True, "referrer"),
    ("web", page(referrer="https://www.youtube.com/"), "social:youtube", E, True, "referrer"),
    ("web", page(referrer="https://youtu.be/xyz"), "social:youtube", E, True, "referrer"),
    ("web", page(referrer="https://www.linkedin.com/"), "social:linkedin", E, True, "referrer"),
    ("web", page(referrer="https://lnkd.in/e3x"), "social:linkedin", E, True, "referrer"),
    ("web", page(referrer="https://t.co/AbC123"), "social:x", E, True, "referrer"),
    ("web", page(referrer="https://x.com/"), "social:x", E, True, "referrer"),
    ("web", page(referrer="https://twitter.com/maisonlea"), "social:x", E, True, "referrer"),
    ("web", page(referrer="https://www.snapchat.com/"), "social:snapchat", E, True, "referrer"),
    ("web", page(referrer="https://out.reddit.com/t3_x"), "social:reddit", E, True, "referrer"),
    (
        "web",
        page(referrer="android-app://com.instagram.android/"),
        "social:instagram",
        E,
        True,
        "referrer",
    ),
    ("web", page(referrer="https://mail.google.com/"), "email", OW, True, "referrer"),
    ("web", page(referrer="https://outlook.live.com/"), "email", OW, True, "referrer"),
    ("web", page(referrer="https://webmail.free.fr/"), "email", OW, True, "referrer"),
    ("web", page(referrer="android-app://com.google.android.gm/"), "email", OW, True, "referrer"),
    ("web", page(referrer="https://www.lemonde.fr/article"), "referral", E, True, "referrer"),
    ("web", page(referrer="https://forum.doctissimo.fr/x"), "referral", E, True, "referrer"),
    # a link inside the site, payment and sign-in pages: not where the visit came from
    ("web", page(referrer=f"{SHOP}/collections/ete"), "web", OW, True, "source"),
    ("web", page(referrer="https://maison-lea.fr/"), "web", OW, True, "source"),
    ("web", page(referrer="https://blog.maison-lea.fr/x"), "web", OW, True, "source"),
    ("web", page(referrer="https://www.paypal.com/checkoutnow"), "web", OW, True, "source"),
    ("web", page(referrer="https://accounts.google.com/"), "web", OW, True, "source"),
    ("web", page(), "web", OW, True, "source"),
    # -- click ids ---------------------------------------------------------------------
    ("web", page("/robe?gclid=Cj0KCQiA"), "ads:google", P, True, "click_id"),
    ("web", page("/robe?gbraid=0AAAAA"), "ads:google", P, True, "click_id"),
    ("web", page("/robe?wbraid=CkkKCQ"), "ads:google", P, True, "click_id"),
    ("web", page("/robe?dclid=CNi8"), "ads:google", P, True, "click_id"),
    ("web", page("/robe?msclkid=7f1e"), "ads:bing", P, True, "click_id"),
    (
        "web",
        page("/robe?fbclid=IwAR2x", referrer="https://l.facebook.com/"),
        "social:facebook",
        E,
        True,
        "click_id",
    ),
    (
        "web",
        page("/robe?utm_source=facebook&utm_medium=paid_social&fbclid=IwAR2x"),
        "ads:facebook",
        P,
        True,
        "click_id",
    ),
    (
        "web",
        page("/robe?utm_source=ig&utm_medium=cpc&fbclid=Iw"),
        "ads:instagram",
        P,
        True,
        "click_id",
    ),
    ("web", page("/robe?utm_medium=paid&fbclid=IwAR"), "ads:meta", P, True, "click_id"),
    (
        "web",
        page("/robe?utm_source=instagram&utm_medium=social&fbclid=Iw"),
        "social:instagram",
        E,
        True,
        "click_id",
    ),
    ("web", page("/robe?ttclid=E.C.P.x"), "ads:tiktok", P, True, "click_id"),
    ("web", page("/robe?li_fat_id=1a2b"), "ads:linkedin", P, True, "click_id"),
    ("web", page("/robe?twclid=2-abc"), "ads:x", P, True, "click_id"),
    ("web", page("/robe?ScCid=9f8e"), "ads:snapchat", P, True, "click_id"),
    ("web", page("/robe?utm_source=newsletter&gclid=x"), "ads:google", P, True, "click_id"),
    ("web", page("/robe?awc=1234_1700_abc"), "affiliate:awin", P, True, "click_id"),
    (
        "web",
        {"type": "page", "properties": {"url": f"{SHOP}/?gclid=x", "referrer": ""}},
        "ads:google",
        P,
        True,
        "click_id",
    ),
    (
        "app",
        {"type": "screen", "context": {"campaign": {"gclid": "x"}}},
        "ads:google",
        P,
        True,
        "click_id",
    ),
    # -- utm parameters ----------------------------------------------------------------
    (
        "web",
        page("/?utm_source=google&utm_medium=cpc&utm_campaign=soldes"),
        "ads:google",
        P,
        True,
        "utm",
    ),
    ("web", page("/?utm_source=adwords&utm_medium=ppc"), "ads:google", P, True, "utm"),
    ("web", page("/?utm_source=bing&utm_medium=paidsearch"), "ads:bing", P, True, "utm"),
    ("web", page("/?utm_source=facebook.com&utm_medium=cpm"), "ads:facebook", P, True, "utm"),
    ("web", page("/?utm_source=ig&utm_medium=paid_social"), "ads:instagram", P, True, "utm"),
    ("web", page("/?utm_source=criteo&utm_medium=retargeting"), "ads:criteo", P, True, "utm"),
    ("web", page("/?utm_source=Le%20Monde&utm_medium=banner"), "ads:le-monde", P, True, "utm"),
    ("web", page("/?utm_source=google&utm_medium=display"), "ads:google", P, True, "utm"),
    ("web", page("/?utm_medium=cpc"), "ads", P, True, "utm"),
    (
        "web",
        page("/?utm_source=brevo&utm_medium=email&utm_campaign=nl-42"),
        "email",
        OW,
        True,
        "utm",
    ),
    ("web", page("/?utm_source=sendinblue&utm_medium=e-mail"), "email", OW, True, "utm"),
    ("web", page("/?utm_source=mailchimp&utm_medium=newsletter"), "email", OW, True, "utm"),
    ("web", page("/?utm_source=brevo&utm_medium=Email"), "email", OW, True, "utm"),
    ("web", page("/?utm_source=splio&utm_medium=crm"), "email", OW, True, "utm"),
    ("web", page("/?utm_source=brevo&utm_medium=sms"), "sms", OW, True, "utm"),
    ("web", page("/?utm_source=batch&utm_medium=push"), "push", OW, True, "utm"),
    ("web", page("/?utm_source=fb&utm_medium=social"), "social:facebook", E, True, "utm"),
    (
        "web",
        page("/?utm_source=instagram&utm_medium=social-network"),
        "social:instagram",
        E,
        True,
        "utm",
    ),
    (
        "web",
        page("/?utm_source=linkedin&utm_medium=organic_social"),
        "social:linkedin",
        E,
        True,
        "utm",
    ),
    ("web", page("/?utm_source=tw&utm_medium=sm"), "social:x", E, True, "utm"),
    ("web", page("/?utm_source=awin&utm_medium=affiliate"), "affiliate:awin", P, True, "utm"),
    (
        "web",
        page("/?utm_source=Effinity&utm_medium=affiliation"),
        "affiliate:effinity",
        P,
        True,
        "utm",
    ),
    ("web", page("/?utm_source=blog-deco&utm_medium=referral"), "referral", E, True, "utm"),
    (
        "web",
        page("/?utm_source=Le+Parisien&utm_medium=print"),
        "press:le-parisien",
        E,
        False,
        "utm",
    ),
    ("web", page("/?utm_source=elle&utm_medium=presse"), "press:elle", E, False, "utm"),
    (
        "web",
        page("/?utm_source=catalogue-ete&utm_medium=direct_mail"),
        "direct_mail",
        H,
        False,
        "utm",
    ),
    ("web", page("/?utm_source=la-poste&utm_medium=courrier"), "direct_mail", H, False, "utm"),
    ("web", page("/?utm_source=flyer-marais&utm_medium=qr"), "street", H, False, "utm"),
    ("web", page("/?utm_medium=flyer"), "street", H, False, "utm"),
    (
        "web",
        page("/?utm_source=%40LeaStyle&utm_medium=influencer"),
        "influencer:leastyle",
        H,
        True,
        "utm",
    ),
    (
        "web",
        page("/?utm_source=Maison%26Objet&utm_medium=salon"),
        "event:maison-objet",
        H,
        False,
        "utm",
    ),
    (
        "web",
        page("/?utm_source=salon-mariage&utm_medium=%C3%A9v%C3%A9nement"),
        "event:salon-mariage",
        H,
        False,
        "utm",
    ),
    ("web", page("/?utm_source=tf1&utm_medium=tv"), "tv", P, False, "utm"),
    ("web", page("/?utm_source=rtl&utm_medium=radio"), "radio", P, False, "utm"),
    ("web", page("/?utm_source=jcdecaux&utm_medium=affichage"), "outdoor", P, False, "utm"),
    ("web", page("/?utm_source=metro&utm_medium=display_ooh"), "outdoor", P, False, "utm"),
    ("web", page("/?utm_source=google&utm_medium=organic"), "search:google", E, True, "utm"),
    # an unknown medium says nothing: the referrer decides
    (
        "web",
        page("/?utm_source=partner&utm_medium=foo", referrer="https://www.google.fr/"),
        "search:google",
        E,
        True,
        "referrer",
    ),
    (
        "web",
        {
            "type": "page",
            "context": {
                "page": {"url": f"{SHOP}/", "referrer": ""},
                "campaign": {"name": "rentree", "source": "Brevo", "medium": "email"},
            },
        },
        "email",
        OW,
        True,
        "utm",
    ),
    # -- the explicit channel of importers and tills -------------------------------------
    ("import", track(channel="store:paris"), "store:paris", H, False, "explicit"),
    ("import", track(channel="call_centre"), "call_centre", OW, False, "explicit"),
    ("import", track(channel="Store:Paris 01"), "store:paris-01", H, False, "explicit"),
    (
        "import",
        track(channel="event:salon-du-chocolat"),
        "event:salon-du-chocolat",
        H,
        False,
        "explicit",
    ),
    ("web", page("/?gclid=x", channel="store:lyon"), "store:lyon", H, False, "explicit"),
    (
        "web",
        page(referrer="https://www.google.fr/", channel="browser"),
        "search:google",
        E,
        True,
        "referrer",
    ),
    # -- the source's own channel ------------------------------------------------------
    ("store:paris-01", track(), "store:paris-01", H, False, "source"),
    ("email", track("Email Opened"), "email", OW, True, "source"),
    (
        "app",
        {"type": "screen", "name": "Panier", "context": {"app": {"name": "Lea"}}},
        "app",
        OW,
        True,
        "source",
    ),
    ("server", track(), "server", OW, True, "source"),
    ("call_centre", track(), "call_centre", OW, False, "source"),
]


@pytest.mark.parametrize(
    ("source", "message", "channel", "media_class", "online", "via"),
    CASES,
    ids=[f"{i:03d}-{c[2]}-{c[5]}" for i, c in enumerate(CASES)],
)
def test_real_world_messages(source, message, channel, media_class, online, via) -> None:
    info = derive_channel(source, message, rules=())
    assert (info.channel, info.media_class, info.online, info.via) == (
        channel,
        media_class,
        online,
        via,
    )


def test_the_table_covers_every_rule_and_many_kinds() -> None:
    assert len(CASES) >= 60
    assert {c[5] for c in CASES} == {"explicit", "click_id", "utm", "referrer", "source"}
    kinds = {c[2].partition(":")[0] for c in CASES}
    assert len(kinds) >= 18


def test_campaign_comes_from_utm_whichever_rule_decides() -> None:
    by_click = derive_channel("web", page("/?gclid=x&utm_campaign=soldes-ete"), rules=())
    assert (by_click.via, by_click.campaign) == ("click_id", "soldes-ete")
    by_referrer = derive_channel(
        "web", page("/?utm_campaign=Noël 2026", referrer="https://www.qwant.com/"), rules=()
    )
    assert (by_referrer.via, by_referrer.campaign) == ("referrer", "Noël 2026")
    assert derive_channel("web", page(referrer="https://www.google.fr/"), rules=()).campaign is None
    long = derive_channel("web", page("/?utm_medium=email&utm_campaign=" + "x" * 400), rules=())
    assert long.campaign == "x" * 255


def test_context_campaign_wins_over_the_url() -> None:
    message = page("/?utm_source=google&utm_medium=cpc&utm_campaign=url")
    message["context"]["campaign"] = {"name": "sdk", "source": "brevo", "medium": "email"}
    info = derive_channel("web", message, rules=())
    assert (info.channel, info.campaign) == ("email", "sdk")


def test_the_info_agrees_with_the_taxonomy() -> None:
    for source, message, *_ in CASES:
        info = derive_channel(source, message, rules=())
        kind, qualifier = parse_channel(info.channel)
        assert (info.media_class, info.online) == (kind.media_class, kind.online)
        assert info.channel == (f"{kind.name}:{qualifier}" if qualifier else kind.name)


# -- user rules --------------------------------------------------------------------------

PRESS = Rule(
    name="fashion-press",
    field="context.page.referrer_host",
    pattern=r"^(marieclaire|elle|vogue)\.fr$",
    channel="press:{match}",
)
PARTNER = Rule(
    name="partner-sites",
    field="utm.source",
    pattern=r"^(galeries-lafayette|printemps)$",
    channel="marketplace:{source}",
)


def test_user_rules_are_tried_first() -> None:
    message = page("/?gclid=x", referrer="https://www.elle.fr/mode/tendances")
    info = derive_channel("web", message, rules=[PRESS])
    assert (info.channel, info.media_class, info.online, info.via) == (
        "press:elle",
        MediaClass.EARNED,
        False,
        "fashion-press",
    )
    assert derive_channel("web", message, rules=[]).via == "click_id"


def test_user_rules_read_utm_and_plain_fields() -> None:
    info = derive_channel(
        "web", page("/?utm_source=Printemps&utm_medium=partenariat"), rules=[PRESS, PARTNER]
    )
    assert (info.channel, info.via) == ("marketplace:printemps", "partner-sites")
    vip = Rule("vip-event", "properties.invitation", r"^VIP-(\w+)", "event:{match}")
    message = track("Ticket Scanned")
    message["properties"]["invitation"] = "vip-Noel2026"
    assert derive_channel("store:paris", message, rules=[vip]).channel == "event:noel2026"
    amount = Rule("big-basket", "properties.total", r"^\d{3,}", "store:flagship")
    assert derive_channel("web", track(), rules=[amount]).via == "source"


def test_a_user_rule_giving_an_invalid_channel_falls_through() -> None:
    bad = Rule("bad", "utm.source", r".+", "{match}")  # `printemps` is no channel kind
    message = page("/?utm_source=printemps&utm_medium=email")
    assert derive_channel("web", message, rules=[bad]).via == "utm"
    good = Rule("kind-from-data", "utm.source", r".+", "{match}:x")
    assert derive_channel("web", page("/?utm_source=radio"), rules=[good]).channel == "radio:x"


def test_rules_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(
        "OMNICANAL_CHANNELS__RULES",
        '[{"name": "press", "field": "context.page.referrer_host",'
        ' "pattern": "lemonde\\\\.fr$", "channel": "press:le-monde"}]',
    )
    rules = compile_rules(Settings(_env_file=None).channels.rules)
    message = page(referrer="https://www.lemonde.fr/m-styles/")
    assert derive_channel("web", message, rules=rules).channel == "press:le-monde"
    get_settings.cache_clear()
    try:
        assert [r.name for r in configured_rules()] == ["press"]
        assert derive_channel("web", message).via == "press"
    finally:
        get_settings.cache_clear()
    monkeypatch.delenv("OMNICANAL_CHANNELS__RULES")
    get_settings.cache_clear()
    assert configured_rules() == ()
    assert derive_channel("web", message).channel == "referral"


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"pattern": "(unclosed"}, "not a valid regular expression"),
        ({"channel": "billboard:paris"}, "not of a known kind"),
        ({"name": "utm"}, "taken by a built-in rule"),
        ({"field": ""}, "at least 1 character"),
    ],
)
def test_invalid_rules_are_refused_with_the_reason(spec, reason) -> None:
    valid = {"name": "r", "field": "utm.source", "pattern": "x", "channel": "ads:{source}"}
    with pytest.raises(ValidationError) as error:
        RuleSpec(**{**valid, **spec})
    assert reason in str(error.value)
    assert next(iter(spec)) in str(error.value)


# -- garbage never breaks it -------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"context": None},
        {"context": "web"},
        {"context": {"page": "https://x"}},
        {"context": {"page": {"url": 42, "referrer": ["https://google.com"], "search": None}}},
        {"context": {"campaign": ["utm_medium=email"]}},
        {"context": {"campaign": {"medium": 7, "source": {"x": 1}, 3: "cpc"}}},
        {"context": {"campaign": {"medium": "   ", "name": ""}}},
        {"context": {"channel": 12}},
        {"context": {"channel": "nowhere:paris"}},
        {"context": {"channel": ":::"}},
        {"context": {"page": {"url": "https://x.fr/?=&&=%zz&utm_medium", "referrer": "::::"}}},
        {"context": {"page": {"url": "notaurl?gclid", "referrer": "https://"}}},
        {"context": {"page": {"referrer": "https://@/"}}},
        {"properties": "https://www.google.com/"},
        {"context": {"page": {"referrer": "https://.../"}}},
    ],
)
def test_garbage_falls_through_to_the_source(message) -> None:
    info = derive_channel("store:paris", message, rules=())
    assert (info.channel, info.via) == ("store:paris", "source")


def test_a_source_channel_outside_the_taxonomy_counts_as_server() -> None:
    assert derive_channel("nowhere", {}, rules=()).channel == "server"
    assert derive_channel("Store:Paris 01", {}, rules=()).channel == "store:paris-01"


KEYS = st.sampled_from(
    [
        "context",
        "page",
        "properties",
        "campaign",
        "channel",
        "url",
        "search",
        "referrer",
        "name",
        "source",
        "medium",
        "utm_source",
        "utm_medium",
        "gclid",
        "fbclid",
        "ScCid",
        "type",
    ]
)
URLS = st.builds(
    lambda scheme, host, query: f"{scheme}{host}/p{query}",
    st.sampled_from(["https://", "http://", "android-app://", "", "//", "https://user@"]),
    st.sampled_from(
        [
            *("www.google.fr", "l.facebook.com", "t.co", "mail.google.com", "www.maison-lea.fr"),
            *("shop.co.uk", "", ".", "a..b", "xn--mnchen-3ya.de", "[::1]", "paypal.com:443"),
        ]
    ),
    st.text(alphabet="?&=#%+_abcdefgilmnopqrstuvwxyz0123456789:é ", max_size=40).map(
        lambda q: "?" + q
    ),
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | URLS
NESTED = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(KEYS | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=25,
)
ANY_RULES = st.lists(
    st.builds(
        Rule,
        name=st.text(min_size=1, max_size=8),
        field=st.sampled_from(
            ["utm.source", "context.page.referrer_host", "context.page.url", "properties", "x.y"]
        ),
        pattern=st.sampled_from([".", "^$", "(g)oo", "face|insta", r"\d+"]),
        channel=st.sampled_from(["ads:{source}", "{match}", "press:{match}", "web", "nope"]),
    ),
    max_size=2,
)


@given(st.dictionaries(KEYS, NESTED, max_size=6), ANY_RULES, st.sampled_from(["web", "x", ""]))
@hypothesis_settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_never_raises_and_always_answers_a_valid_channel(message, rules, source) -> None:
    info = derive_channel(source, message, rules=rules)
    assert isinstance(info, ChannelInfo)
    kind, qualifier = parse_channel(info.channel)
    assert KINDS[kind.name].media_class == info.media_class
    assert info.channel == (f"{kind.name}:{qualifier}" if qualifier else kind.name)
    assert info.campaign is None or 0 < len(info.campaign) <= 255


# -- the documentation's examples --------------------------------------------------------

DOC = Path(__file__).parents[2] / "docs" / "concepts" / "channels.md"


def test_the_documented_python_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {})


def test_the_documented_environment_rules_load(monkeypatch) -> None:
    found = re.search(
        r"OMNICANAL_CHANNELS__RULES='(.*?)'", DOC.read_text(encoding="utf-8"), re.DOTALL
    )
    assert found is not None
    monkeypatch.setenv("OMNICANAL_CHANNELS__RULES", found[1])
    rules = compile_rules(Settings(_env_file=None).channels.rules)
    assert [r.name for r in rules] == ["fashion-press", "department-stores", "vip-evenings"]
    visit = page(referrer="https://www.vogue.fr/")
    assert derive_channel("web", visit, rules=rules).channel == "press:vogue"
    store = page("/?utm_source=Galeries%20Lafayette&utm_medium=partenaire")
    assert derive_channel("web", store, rules=rules).channel == "marketplace:galeries-lafayette"


def test_the_documented_taxonomy_table_matches_the_code() -> None:
    rows = re.findall(
        r"^\| `(\w+)` \| (\w+) \| (yes|no) \| (yes|no)[^|]* \| ([^|]+) \| ([^|]+) \|$",
        DOC.read_text(encoding="utf-8"),
        re.MULTILINE,
    )
    documented = {
        r[0]: (r[1], r[2] == "yes", r[3] == "yes", r[4].strip(), r[5].strip()) for r in rows
    }
    actual = {
        k.name: (k.media_class.value, k.online, k.qualified, k.label_fr, k.label_en)
        for k in KINDS.values()
    }
    assert documented == actual
