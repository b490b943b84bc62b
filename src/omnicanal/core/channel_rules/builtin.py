"""The built-in rules, tried in order after the user's: explicit, click id, utm, referrer.

Each takes the message's view and returns a channel of the taxonomy or None, so
the next rule decides; `source_channel` is the last resort when none does.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from functools import lru_cache

from omnicanal.core.channel_rules.naming import (
    IGNORED,
    SEPARATORS,
    channel,
    classify_host,
    host,
    site,
    table,
    valid_channel,
)
from omnicanal.core.channel_rules.view import View


def _explicit(view: View) -> str | None:
    value = view.context.get("channel")
    return valid_channel(value) if isinstance(value, str) and value else None


_PAID_MEDIUMS = frozenset(
    {"cpc", "ppc", "paid", "paidsearch", "paid_search", "sem", "sea", "display", "cpm"}
    | {"cpv", "banner", "paid_social", "paidsocial", "social_paid", "social_ads", "retargeting"}
    | {"remarketing", "ads", "ad", "paid_ads", "sponsored", "video", "paid_video"}
)
_META_NETWORKS = frozenset({"facebook", "instagram", "messenger", "threads", "meta"})
# Click ids added to landing-page URLs by ad platforms, affiliate networks and ESPs
# (`fbclid` is handled on its own); the first found in this order decides.
_CLICK_IDS = table("""
ads:google: gclid gbraid wbraid dclid
ads:bing: msclkid
ads:tiktok: ttclid
ads:linkedin: li_fat_id
ads:x: twclid
ads:snapchat: sccid
ads:pinterest: epik
ads:reddit: rdt_cid
ads:yandex: yclid
affiliate:awin: awc
affiliate:tradedoubler: tduid
affiliate:cj: cjevent
affiliate:impact: irclickid
affiliate:rakuten: ranmid
email: mc_cid
""")


def _click_id(view: View) -> str | None:
    query = view.query()
    campaign = view.context.get("campaign")
    if not query and not campaign:
        return None
    keys = set(query)
    if isinstance(campaign, Mapping):
        keys.update(k.lower() for k in campaign if isinstance(k, str))
    if "fbclid" in keys:
        return _fbclid(view)
    for key, found in _CLICK_IDS.items():
        if key in keys:
            return found
    return None


def _fbclid(view: View) -> str:
    """Meta adds `fbclid` to every outbound link: only a paid medium makes it an ad."""
    utm = view.utm()
    source = utm.get("source", "")
    network = source if source in _META_NETWORKS else ""
    if _medium(utm.get("medium", "")) in _PAID_MEDIUMS:
        return f"ads:{network or 'meta'}"
    return f"social:{network if network and network != 'meta' else 'facebook'}"


# utm_medium (lower case, `-` and spaces as `_`, accents dropped) -> kind; `:source`
# qualifies the kind with the normalised utm_source.
_MEDIUM_TABLE = table("""
email: email e_mail emailing newsletter crm mail
sms: sms texto mms rcs
push: push notification push_notification web_push notif
social:source: social social_network social_media socialmedia organic_social social_organic sm
affiliate:source: affiliate affiliation affiliates cpa
referral: referral referal referer
press:source: print press presse magazine pr
direct_mail: direct_mail courrier mailing postal catalogue
street: qr qrcode qr_code flyer street tract street_marketing
influencer:source: influence influencer influenceur influencers influenceurs
event:source: event events evenement evenements salon
tv: tv television
radio: radio
outdoor: display_ooh ooh dooh affichage
marketplace:source: marketplace
search:source: organic seo
""")
_MEDIUMS: dict[str, tuple[str, bool]] = {
    **dict.fromkeys(_PAID_MEDIUMS, ("ads", True)),
    **{m: (v.partition(":")[0], v.endswith(":source")) for m, v in _MEDIUM_TABLE.items()},
}


def _medium(raw: str) -> str:
    text = raw.strip().lower()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return SEPARATORS.sub("_", text)


def _utm(view: View) -> str | None:
    if not view.context.get("campaign") and not view.query():
        return None
    utm = view.utm()
    found = _MEDIUMS.get(_medium(utm.get("medium", "")))
    if found is None:
        return None
    kind, qualified = found
    return channel(kind, utm.get("source", "") if qualified else "")


def _referrer(view: View) -> str | None:
    referrer = view.referrer()
    referring = host(referrer) if referrer else ""
    if not referring:
        return None
    found = classify_host(referring)
    if found == IGNORED:
        return None
    if found is not None:
        return found
    page = host(view.url())
    if page and site(page) == site(referring):
        return None  # a link inside the site: the visit's origin is elsewhere
    return "referral"


STEPS = (("explicit", _explicit), ("click_id", _click_id), ("utm", _utm), ("referrer", _referrer))


@lru_cache(maxsize=1024)
def source_channel(value: str) -> str:
    """Return the source's channel; one outside the taxonomy counts as `server`."""
    return (valid_channel(value) if isinstance(value, str) else None) or "server"
