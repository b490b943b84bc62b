"""Names in a message brought to the taxonomy: qualifiers, utm sources, referring hosts.

Shared by the message view (which normalises the utm source), the built-in rules
(which classify referrers) and user rules (whose channel templates are checked here).
Answers per host and per source are cached: the same few recur in every event.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from omnicanal.core.channels import KINDS

_MAX_QUALIFIER = 63

_HOST = re.compile(
    r"^\s*(?:[a-z][a-z0-9+.-]*:)?//(?:[^/?#@\s]*@)?([a-z0-9_-][^/?#:@\s\\]*)", re.IGNORECASE
)
_BARE_HOST = re.compile(r"^\s*([a-z0-9-]+(?:\.[a-z0-9-]+)+)\.?(?:[/:?#]|\s*$)", re.IGNORECASE)


def host(url: str) -> str:
    """Return a URL's host, lower-cased, without `www.`; "" when there is none."""
    match = _HOST.match(url) or _BARE_HOST.match(url)
    if match is None:
        return ""
    found = match[1].lower().rstrip(".")
    return found[4:] if found.startswith("www.") else found


_QUALIFIER_DROP = re.compile(r"[^a-z0-9_.-]+")
SEPARATORS = re.compile(r"[\s\-]+")


def _qualifier(value: str) -> str:
    """Return text in the taxonomy's qualifier syntax, or "" when nothing is left."""
    if not value.isascii():
        value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    value = _QUALIFIER_DROP.sub("-", value.strip().lower()).lstrip("_.-")
    return value[:_MAX_QUALIFIER].rstrip("-")


def channel(kind: str, qualifier: str) -> str | None:
    """Return `kind[:qualifier]` when the kind is in the taxonomy, else None."""
    if kind not in KINDS:
        return None
    return f"{kind}:{qualifier}" if qualifier else kind


@lru_cache(maxsize=4096)
def valid_channel(value: str) -> str | None:
    """Return a channel with its qualifier normalised (`Store:Paris 01` -> `store:paris-01`)."""
    kind, _, qualifier = value.partition(":")
    return channel(kind.strip().lower(), _qualifier(qualifier))


def table(text: str) -> dict[str, str]:
    """Read `value: key key ...` lines into {key: value}."""
    found: dict[str, str] = {}
    for line in text.strip().splitlines():
        value, _, keys = line.partition(": ")
        found.update(dict.fromkeys(keys.split(), value.strip()))
    return found


# Network and engine names as people write them in utm_source.
_SOURCE_ALIASES = table("""
facebook: fb face facebook_ads fb_ads
instagram: ig insta instagram_ads
x: twitter tw
linkedin: li lnkd
youtube: yt
tiktok: tt tiktok_ads
pinterest: pin
snapchat: snap
google: adwords google_ads googleads gads pmax
bing: microsoft microsoft_ads msads bing_ads
""")


@lru_cache(maxsize=4096)
def source_name(raw: str) -> str:
    """Return the normalised utm source: `m.facebook.com`, `fb`, `Facebook` -> `facebook`."""
    text = raw.strip().lower()
    if "." in text:
        found = host(text)
        network = _host_network(found) if found else None
        if network is not None:
            return network
    key = SEPARATORS.sub("_", text)
    return _SOURCE_ALIASES.get(key) or _qualifier(text)


_SEARCH_ENGINES = frozenset(
    {"google", "bing", "qwant", "ecosia", "duckduckgo", "yahoo", "yandex", "baidu", "lilo"}
    | {"startpage", "brave", "naver", "seznam", "ask", "aol"}
)
_SOCIAL_BRANDS = {
    **{n: n for n in ("facebook", "instagram", "tiktok", "pinterest", "youtube", "linkedin")},
    **{n: n for n in ("snapchat", "reddit", "threads", "whatsapp")},
    **{"twitter": "x", "bsky": "bluesky"},
}

# Hosts that the brand of their domain does not name, and mobile apps' referrers
# (`android-app://<package>`).
_HOSTS = table("""
social:x: t.co x.com com.twitter.android
social:linkedin: lnkd.in com.linkedin.android
social:youtube: youtu.be
social:pinterest: pin.it com.pinterest
social:facebook: fb.me fb.com com.facebook.katana com.facebook.orca
social:instagram: com.instagram.android
social:tiktok: com.zhiliaoapp.musically
social:snapchat: com.snapchat.android
social:reddit: com.reddit.frontpage
social:whatsapp: wa.me
search:google: com.google.android.googlequicksearchbox
ads:google: googleadservices.com
email: mail.google.com outlook.live.com outlook.office.com outlook.office365.com
email: com.google.android.gm com.microsoft.office.outlook
""")
# Payment pages and sign-in services send people back to the site mid-visit: they
# are not where the visit came from.
_IGNORED_BRANDS = frozenset(
    {"paypal", "stripe", "adyen", "klarna", "payplug", "getalma", "mollie", "payzen"}
    | {"systempay", "lyra", "monext", "payline", "sumup", "lydia", "3dsecure"}
)
_IGNORED_HOSTS = frozenset({"accounts.google.com", "appleid.apple.com", "login.live.com"})
_WEBMAIL = re.compile(r"^(?:web)?mail\d*\.|^email\.|^messagerie\.|^webmail")
# Second-level labels under country domains: google.co.uk, google.com.br.
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "gov", "ac", "edu", "ne", "or", "gouv"})
IGNORED = "-"  # a host classification meaning "not the origin of the visit"


def _brand(labels: list[str]) -> str:
    """Return the label before the public suffix: `google` in `www.google.co.uk`."""
    if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2:
        return labels[-3]
    return labels[-2] if len(labels) >= 2 else labels[0]


def site(host: str) -> str:
    """Return the registrable part of a host: `shop.example.fr` -> `example.fr`."""
    labels = host.split(".")
    keep = 3 if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2 else 2
    return ".".join(labels[-keep:])


def _host_network(host: str) -> str | None:
    """Return the search engine or social network a host belongs to, if any."""
    found = classify_host(host)
    if found and ":" in found:
        return found.partition(":")[2]
    return None


@lru_cache(maxsize=8192)
def classify_host(host: str) -> str | None:
    """Return a referring host's channel, `IGNORED`, or None for an ordinary site."""
    if host in _HOSTS:
        return _HOSTS[host]
    if host in _IGNORED_HOSTS:
        return IGNORED
    if _WEBMAIL.match(host):
        return "email"
    brand = _brand(host.split("."))
    if brand in _SEARCH_ENGINES:
        return f"search:{brand}"
    if brand in _SOCIAL_BRANDS:
        return f"social:{_SOCIAL_BRANDS[brand]}"
    if brand in _IGNORED_BRANDS:
        return IGNORED
    return None
